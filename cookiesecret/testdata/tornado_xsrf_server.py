# A Tornado application with xsrf_cookies=True, for cookiesecret's XSRF
# comparison test. It listens on 127.0.0.1 on an ephemeral port, prints the
# port on stdout and serves until its standard input is closed. Needs the
# Debian package python3-tornado (/usr/bin/python3).
import asyncio
import logging
import os
import sys
import threading

import tornado.netutil
import tornado.web
from tornado.httpserver import HTTPServer


class Form(tornado.web.RequestHandler):
    def get(self):
        self.write(self.xsrf_token)

    def post(self):
        self.write("ok")


def watch_stdin():
    sys.stdin.read()
    os._exit(0)


async def main():
    logging.disable(logging.CRITICAL)
    app = tornado.web.Application([(r"/form", Form)], xsrf_cookies=True)
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    print(sockets[0].getsockname()[1], flush=True)
    threading.Thread(target=watch_stdin, daemon=True).start()
    await asyncio.Event().wait()


asyncio.run(main())
