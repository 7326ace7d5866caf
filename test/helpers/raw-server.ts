import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A TCP server that answers each HTTP request with whatever bytes the test writes: for servers
 * that break the protocol in ways node:http refuses to (bodies past Content-Length, endless
 * headers, resets inside the status line).
 */
export interface RawServer {
  url: (path: string) => string;
  close: () => Promise<void>;
}

export async function startRawServer(answer: (socket: Socket, path: string) => void): Promise<RawServer> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let head = '';
    socket.on('data', (d) => {
      if (head.includes('\r\n\r\n')) return;
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const path = /^GET (\S+)/.exec(head)?.[1] ?? '/';
      answer(socket, path);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
