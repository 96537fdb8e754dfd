/**
 * ARC-1: the structure of the library, checked by `npm run lint` (and so by CI):
 *
 * - no import cycles, of files or through type-only imports;
 * - the concern folders never import the two paths (`delivery/`), the plugins'
 *   side (`haraka/`) or the CLI (`cli/`); `delivery/` imports neither of the
 *   last two, `haraka/` not `cli/`;
 * - among themselves the concern folders keep the order of LAYERS below: a
 *   folder imports only folders of lower layers (never one of its own layer
 *   or above), so no folder imports a folder that imports it.
 *
 * A new folder must be given a layer here, or the last rule refuses it.
 * Unit tests (`*.test.ts`) may import across the layers; nothing imports them.
 */
const SRC = '^packages/outbound-security/src/';

/** Bottom to top. Root modules by file name, folders by name. */
const LAYERS = [
  ['domain.ts', 'sec-level.ts', 'ini.ts', 'types/'],
  ['store/'],
  ['dns/', 'https/'],
  ['mx/', 'policy-table/', 'ratchet/', 'requiretls/'],
  ['mta-sts/', 'dane/'],
  ['tls/'],
  ['tlsrpt/'],
  ['metrics.ts'],
  ['config/'],
  ['state/'],
];
const UPPER = ['delivery/', 'haraka/', 'cli/', 'index.ts'];

const escapeDots = (part) => part.replace(/[.]/g, '\\.');
const pathOf = (parts) => `${SRC}(${parts.map(escapeDots).join('|')})`;
const TEST = '\\.test\\.ts$';

/** One rule per folder: it imports only the layers below its own (and itself). */
const layerRules = LAYERS.flatMap((layer, i) =>
  layer.map((part) => ({
    name: `layer-order:${part}`,
    comment: `ARC-1: ${part} may import only the layers below its own (see LAYERS in .dependency-cruiser.cjs)`,
    severity: 'error',
    from: { path: pathOf([part]), pathNot: TEST },
    to: { path: pathOf([...LAYERS.slice(i).flat(), ...UPPER].filter((other) => other !== part)) },
  })),
);

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'ARC-1: no import cycles',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'delivery-below-haraka-and-cli',
      comment: 'ARC-1: the two paths are called by the plugins and the CLI, never the other way round',
      severity: 'error',
      from: { path: pathOf(['delivery/']), pathNot: TEST },
      to: { path: pathOf(['haraka/', 'cli/', 'index.ts']) },
    },
    {
      name: 'haraka-below-cli',
      comment: 'ARC-1: the plugins never import the CLI',
      severity: 'error',
      from: { path: pathOf(['haraka/']), pathNot: TEST },
      to: { path: pathOf(['cli/', 'index.ts']) },
    },
    {
      name: 'every-folder-has-a-layer',
      comment: 'ARC-1: a module of the library outside every layer: give its folder a place in LAYERS',
      severity: 'error',
      from: { path: SRC, pathNot: [pathOf([...LAYERS.flat(), ...UPPER]), TEST] },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)dist/|(^|/)node_modules/' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: ['.ts', '.d.ts', '.js'] },
  },
};
