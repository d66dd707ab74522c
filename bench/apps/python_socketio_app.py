"""python-socketio's AsyncServer on uvicorn, with ``async def`` handlers (its ASGI deployment)."""

from __future__ import annotations

import argparse
from typing import Any

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi")


@sio.on("echo")
async def echo(sid: str, data: Any) -> None:
    await sio.emit("echo", data, to=sid)


@sio.on("echoack")
async def echoack(sid: str, data: Any) -> Any:
    return data


@sio.on("bcast")
async def bcast(sid: str, data: Any) -> None:
    await sio.emit("bcast", data)


app = socketio.ASGIApp(sio)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port, log_level="warning")
