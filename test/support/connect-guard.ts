/**
 * Records every TCP connection this process attempts while it is installed,
 * and stops any to a non-loopback address before it leaves the machine: the
 * socket fails with an error instead. Tests that prove an address is refused
 * (RPT-9: 10.0.0.5, fd00::1) assert that nothing was attempted, without ever
 * connecting there, whatever the code under test does.
 */
import net from 'node:net';

export interface ConnectGuard {
  /** `address:port` of every attempt, loopback ones included. */
  readonly attempts: string[];
  uninstall(): void;
}

const isLoopback = (host: string): boolean => /^127\./.test(host) || host === '::1' || host === 'localhost';

export function installConnectGuard(): ConnectGuard {
  const original = net.Socket.prototype.connect;
  const attempts: string[] = [];
  // Socket.connect has several overloads; the options object is the form https and tls use.
  net.Socket.prototype.connect = function guardedConnect(this: net.Socket, ...args: unknown[]): net.Socket {
    const first = args[0] as { host?: string; port?: number; path?: string } | number | string;
    const host = typeof first === 'object' ? (first.host ?? 'localhost') : typeof args[1] === 'string' ? args[1] : 'localhost';
    const port = typeof first === 'object' ? first.port : first;
    // A local socket (IPC path, no port); an HTTP request's options carry its URL path too, with a port.
    if (typeof first === 'object' && first.port === undefined && first.path !== undefined) {
      return (original as (...a: unknown[]) => net.Socket).apply(this, args);
    }
    attempts.push(`${host}:${String(port)}`);
    if (!isLoopback(host)) {
      process.nextTick(() => this.destroy(new Error(`connect guard: no connection to ${host} from a test`)));
      return this;
    }
    return (original as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof original;
  return {
    attempts,
    uninstall: () => {
      net.Socket.prototype.connect = original;
    },
  };
}
