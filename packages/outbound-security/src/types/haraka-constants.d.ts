/** Haraka's hook return codes; the package ships no types of its own. */
declare module 'haraka-constants' {
  const constants: {
    cont: number;
    stop: number;
    deny: number;
    denysoft: number;
    denydisconnect: number;
    disconnect: number;
    ok: number;
    next_hook: number;
    delay: number;
    denysoftdisconnect: number;
  };
  export = constants;
}
