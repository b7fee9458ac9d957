// Starts the origin server of the HTTP caching tests (server/server.mjs of
// the npm package http-cache-tests) for `cargo xtask cache-tests`.
//
// usage: node origin.mjs PACKAGE_DIR
// with npm_config_protocol, npm_config_port and npm_config_pidfile set, as
// `npm run server` would. Port 0 picks a free port; server.mjs prints the
// one it got ("Listening on http://127.0.0.1:PORT/").
//
// Two things server.mjs does not do on its own:
// - it calls `server.listen(port)`, which listens on every interface; the
//   origin is only for this machine, so the loopback host is added here.
// - it runs until killed; this one also exits when its standard input
//   closes, so it cannot outlive the xtask that started it, however that
//   ends.

import http from 'node:http'
import path from 'node:path'
import process from 'node:process'
import { pathToFileURL } from 'node:url'

const [packageDir] = process.argv.slice(2)
if (packageDir === undefined) {
  console.error('usage: node origin.mjs PACKAGE_DIR')
  process.exit(2)
}

const listen = http.Server.prototype.listen
http.Server.prototype.listen = function (port, ...rest) {
  return listen.call(this, port, '127.0.0.1', ...rest)
}

process.stdin.on('end', () => process.exit(0))
process.stdin.resume()

await import(pathToFileURL(path.join(packageDir, 'server', 'server.mjs')).href)
