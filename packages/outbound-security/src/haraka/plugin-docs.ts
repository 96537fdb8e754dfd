/**
 * PKG-2: `haraka -c <dir> -h <plugin>` shows a plugin's documentation from
 * `<dir>/docs/<plugin>.md` or `<dir>/docs/plugins/<plugin>.md` (or from
 * Haraka's own node_modules, where an admin's npm install never puts a
 * plugin). At register time a plugin copies its README to `docs/<plugin>.md`
 * when `docs/` exists (`haraka -i` creates it) and the file is absent or an
 * earlier copy of ours; a file the admin wrote is never touched.
 */
import cluster from 'node:cluster';
import fs from 'node:fs';
import path from 'node:path';

const MARKER = '<!-- copied from the package haraka-plugin-';

export type DocsResult = { kind: 'installed' | 'current' | 'skipped'; file?: string } | { kind: 'error'; reason: string };

export function installPluginDocs(plugin: string, packageDir: string, harakaDir: string | undefined): DocsResult {
  if (!harakaDir) return { kind: 'skipped' };
  const docsDir = path.join(harakaDir, 'docs');
  const file = path.join(docsDir, `${plugin}.md`);
  try {
    if (!fs.statSync(docsDir, { throwIfNoEntry: false })?.isDirectory()) return { kind: 'skipped' };
    if (fs.existsSync(path.join(docsDir, 'plugins', `${plugin}.md`))) return { kind: 'skipped' }; // the admin's own, found first
    const text = `${MARKER}${plugin} by its register(); edits are overwritten -->\n${fs.readFileSync(path.join(packageDir, 'README.md'), 'utf8')}`;
    const existing = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    if (existing === text) return { kind: 'current', file };
    if (existing !== null && !existing.startsWith(MARKER)) return { kind: 'skipped', file };
    const temp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(temp, text);
    fs.renameSync(temp, file);
    return { kind: 'installed', file };
  } catch (err) {
    return { kind: 'error', reason: `${file}: ${(err as Error).message}` };
  }
}

/** installPluginDocs for a plugin at register(), with a log line when something was written or went wrong. */
export function publishPluginDocs(plugin: { name: string; loginfo(m: string): void; logwarn(m: string): void }, packageDir: string): void {
  // Only Haraka's main process: workers would race each other for the same file.
  if (!cluster.isPrimary) return;
  const result = installPluginDocs(plugin.name, packageDir, process.env.HARAKA);
  if (result.kind === 'installed')
    plugin.loginfo(`${plugin.name}: documentation for \`haraka -h ${plugin.name}\` written to ${result.file}`);
  if (result.kind === 'error') plugin.logwarn(`${plugin.name}: could not write the documentation for \`haraka -h\`: ${result.reason}`);
}
