"""A small stand-in of the Telegram Bot API server on 127.0.0.1, for the bot's tests.

It speaks real HTTP the way api.telegram.org does (`/bot<TOKEN>/<method>`, files at
`/file/bot<TOKEN>/<file_path>`), so the bot's real `Application` and PTB's real HTTP layer
talk to it through `base_url` / `base_file_url`. Tests queue updates (photos with several
sizes, image documents, albums, commands, other documents, videos, video notes and animations),
and read back every call the bot made: sendMessage, sendDocument (with the uploaded bytes),
sendChatAction, editMessageText, deleteMessage, getFile and file downloads. Like the real one, it answers 401 Unauthorized to any other token, and 403 Forbidden
to a send* call for a chat listed in `blocked` (a user who blocked the bot); while `down` is set it answers
every call 502 Bad Gateway, as Telegram's front servers do in an outage.
"""
from __future__ import annotations

import email.parser
import email.policy
import io
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from PIL import Image

BOT_ID = 7000001
BOT_USERNAME = "deepfake_test_bot"
DOWNLOAD_LIMIT = 20 * 1024 * 1024
"""The real Bot API refuses getFile for files over 20 MB."""
SEND_METHODS = ("sendMessage", "sendDocument", "sendChatAction", "sendPhoto", "editMessageText", "deleteMessage")
BLOCKED = "Forbidden: bot was blocked by the user"


class ApiError(Exception):
    """A Bot API error answer: {"ok": false, "error_code": ..., "description": ...}."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code, self.description = code, description


@dataclass
class Call:
    """One Bot API method call the bot made, as the server received it."""

    method: str
    params: dict[str, str]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)

    @property
    def chat_id(self) -> int | None:
        """The target chat of a send* call (None when the call has none)."""
        value = self.params.get("chat_id")
        return int(value) if value not in (None, "") else None

    @property
    def reply_to(self) -> int | None:
        """The message id this call replies to (from reply_parameters), if any."""
        raw = self.params.get("reply_parameters")
        if raw:
            return int(json.loads(raw)["message_id"])
        return None


@dataclass
class StoredFile:
    """A file the stand-in can serve through getFile + download."""

    file_id: str
    data: bytes
    file_path: str
    file_size: int


class FakeTelegram:
    """The stand-in server: queue updates with `send_*`, read the bot's calls from `calls`."""

    def __init__(self, token: str, port: int = 0) -> None:
        self.token = token
        self.blocked: set[int] = set()
        """Chats whose user blocked the bot: send* calls to them get 403 Forbidden."""
        self.down = False
        """An outage: every Bot API call gets 502 Bad Gateway (nothing is recorded)."""
        self.calls: list[Call] = []
        self.downloads: list[str] = []
        self.files: dict[str, StoredFile] = {}
        self._updates: list[dict] = []
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._message_ids = itertools.count(100)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-telegram", daemon=True)

    # life cycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT of the stand-in."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """What the bot passes as base_url (PTB appends the token)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """What the bot passes as base_file_url (PTB appends the token)."""
        return f"{self.url}/file/bot"

    def start(self) -> "FakeTelegram":
        """Serve in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        with self._cond:
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeTelegram":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # building updates ----------------------------------------------------------------------
    def add_file(self, data: bytes, file_path: str, file_size: int | None = None) -> StoredFile:
        """Register bytes the bot may fetch; `file_size` may be declared bigger than the data."""
        n = next(self._ids)
        stored = StoredFile(file_id=f"FILE{n:04d}", data=data, file_path=file_path,
                            file_size=len(data) if file_size is None else file_size)
        self.files[stored.file_id] = stored
        return stored

    def _message(self, user_id: int, **content) -> dict:
        """A private-chat message from `user_id` with the given content fields."""
        user = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}", "language_code": "en"}
        chat = {"id": user_id, "type": "private", "first_name": f"User{user_id}"}
        return {"message_id": next(self._message_ids), "date": int(time.time()), "chat": chat,
                "from": user, **content}

    def _push(self, message: dict) -> dict:
        """Queue one update carrying `message`; returns the message."""
        with self._cond:
            self._updates.append({"update_id": next(self._ids), "message": message})
            self._cond.notify_all()
        return message

    def send_text(self, user_id: int, text: str) -> dict:
        """A text message (a command when it starts with '/')."""
        content: dict = {"text": text}
        if text.startswith("/"):
            command = text.split()[0]
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._push(self._message(user_id, **content))

    def send_photo(self, user_id: int, jpeg: bytes, media_group_id: str | None = None,
                   caption: str | None = None) -> dict:
        """A photo as Telegram delivers it: several sizes, the original-size one last."""
        sizes = []
        try:
            img = Image.open(io.BytesIO(jpeg))
            size = img.size
            for side in (90, 320):
                if side < max(img.size):
                    small = img.copy()
                    small.thumbnail((side, side))
                    buf = io.BytesIO()
                    small.convert("RGB").save(buf, "JPEG", quality=80)
                    sizes.append((small.size, buf.getvalue()))
        except OSError:  # a broken upload: Telegram would pass it on as one size
            sizes, size = [], (320, 320)
        sizes.append((size, jpeg))
        photo = []
        for (w, h), data in sizes:
            stored = self.add_file(data, f"photos/file_{len(self.files)}.jpg")
            photo.append({"file_id": stored.file_id, "file_unique_id": "u" + stored.file_id,
                          "width": w, "height": h, "file_size": stored.file_size})
        content: dict = {"photo": photo}
        if media_group_id:
            content["media_group_id"] = media_group_id
        if caption:
            content["caption"] = caption
        return self._push(self._message(user_id, **content))

    def send_document(self, user_id: int, data: bytes, file_name: str, mime_type: str,
                      file_size: int | None = None, media_group_id: str | None = None,
                      declare_size: bool = True) -> dict:
        """A file sent as a document (no recompression); `file_size` may be declared larger, or not at all."""
        stored = self.add_file(data, f"documents/{file_name}", file_size)
        document = {"file_id": stored.file_id, "file_unique_id": "u" + stored.file_id,
                    "file_name": file_name, "mime_type": mime_type}
        if declare_size:
            document["file_size"] = stored.file_size
        content: dict = {"document": document}
        if media_group_id:
            content["media_group_id"] = media_group_id
        return self._push(self._message(user_id, **content))

    def _video_file(self, data: bytes, file_path: str, file_size: int | None, declare_size: bool) -> dict:
        """The fields every Telegram video-like object carries, for bytes the bot may fetch."""
        stored = self.add_file(data, file_path, file_size)
        fields = {"file_id": stored.file_id, "file_unique_id": "u" + stored.file_id, "duration": 2}
        if declare_size:
            fields["file_size"] = stored.file_size
        return fields

    def send_video(self, user_id: int, data: bytes, file_name: str | None = "clip.mp4",
                   mime_type: str = "video/mp4", file_size: int | None = None, declare_size: bool = True) -> dict:
        """A video sent as a video (Telegram's player shows it); `file_size` may be declared larger."""
        video = {**self._video_file(data, f"videos/{file_name or 'file.mp4'}", file_size, declare_size),
                 "width": 160, "height": 120, "mime_type": mime_type}
        if file_name:
            video["file_name"] = file_name
        return self._push(self._message(user_id, video=video))

    def send_video_note(self, user_id: int, data: bytes, file_size: int | None = None) -> dict:
        """A round video message: no file name, no MIME type, a side length."""
        note = {**self._video_file(data, f"video_notes/file_{len(self.files)}.mp4", file_size, True), "length": 240}
        return self._push(self._message(user_id, video_note=note))

    def send_animation(self, user_id: int, data: bytes, file_name: str = "funny.gif.mp4",
                       mime_type: str = "video/mp4") -> dict:
        """An animation (a GIF, usually re-encoded by Telegram as a silent MP4): the message carries it both as
        `animation` and as `document`, as Telegram's does."""
        fields = self._video_file(data, f"animations/{file_name}", None, True)
        animation = {**fields, "width": 160, "height": 120, "file_name": file_name, "mime_type": mime_type}
        document = {key: fields[key] for key in ("file_id", "file_unique_id", "file_size")}
        document.update(file_name=file_name, mime_type=mime_type)
        return self._push(self._message(user_id, animation=animation, document=document))

    # reading what the bot did --------------------------------------------------------------
    def calls_to(self, method: str, chat_id: int | None = None) -> list[Call]:
        """The recorded calls of one method, optionally only those to one chat."""
        with self._cond:
            calls = list(self.calls)
        return [c for c in calls if c.method == method and (chat_id is None or c.chat_id == chat_id)]

    def texts(self, chat_id: int | None = None) -> list[str]:
        """The text of every sendMessage, in order."""
        return [c.params.get("text", "") for c in self.calls_to("sendMessage", chat_id)]

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition"):
        """Block until predicate() is truthy (re-checked on each call received); return its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    methods = [c.method for c in self.calls]
                    raise TimeoutError(f"timed out waiting for {what}; calls so far: {methods}")
                self._cond.wait(min(left, 0.2))

    def wait_calls(self, method: str, count: int, chat_id: int | None = None, timeout: float = 30.0) -> list[Call]:
        """Wait until at least `count` calls of `method` (to `chat_id`) arrived; return them."""
        return self.wait_for(lambda: (c := self.calls_to(method, chat_id)) and len(c) >= count and c,
                             timeout, f"{count} x {method} to {chat_id}")

    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by the bot's getUpdates offset."""
        with self._cond:
            return len(self._updates)

    # serving -------------------------------------------------------------------------------
    def _record(self, call: Call) -> None:
        """Keep a call and wake waiters."""
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _get_updates(self, params: dict[str, str]) -> list[dict]:
        """Long polling: confirm updates below `offset`, then wait up to `timeout` for new ones."""
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 5.0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        with self._cond:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            return list(self._updates[:limit])

    def _sent_message(self, params: dict[str, str], **content) -> dict:
        """The Message object Telegram returns for a send* call."""
        chat_id = int(params["chat_id"])
        return {"message_id": next(self._message_ids), "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Deepfake", "username": BOT_USERNAME},
                **content}

    def answer(self, method: str, params: dict[str, str], files: dict[str, tuple[str, bytes]]):
        """The `result` of one Bot API method, or raise KeyError for an unknown one."""
        if method == "getMe":
            return {"id": BOT_ID, "is_bot": True, "first_name": "Deepfake", "username": BOT_USERNAME,
                    "can_join_groups": False, "can_read_all_group_messages": False,
                    "supports_inline_queries": False}
        if method in ("deleteWebhook", "setMyCommands", "sendChatAction", "setWebhook", "close", "logOut"):
            return True
        if method == "getUpdates":
            return self._get_updates(params)
        if method in SEND_METHODS and params.get("chat_id") and int(params["chat_id"]) in self.blocked:
            raise ApiError(403, BLOCKED)
        if method == "getFile":
            stored = self.files.get(params.get("file_id", ""))
            if stored is None:
                raise ApiError(400, "Bad Request: invalid file_id")
            if stored.file_size > DOWNLOAD_LIMIT:
                raise ApiError(400, "Bad Request: file is too big")
            return {"file_id": stored.file_id, "file_unique_id": "u" + stored.file_id,
                    "file_size": stored.file_size, "file_path": stored.file_path}
        if method == "sendMessage":
            return self._sent_message(params, text=params.get("text", ""))
        if method == "editMessageText":
            return self._sent_message(params, text=params.get("text", ""))
        if method == "deleteMessage":
            return True
        if method == "sendDocument":
            name, data = files.get("document", ("document", b""))
            return self._sent_message(params, document={"file_id": f"SENT{len(self.calls)}",
                                                        "file_unique_id": f"S{len(self.calls)}",
                                                        "file_name": name, "file_size": len(data)})
        raise KeyError(method)


def _parse_body(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Form fields and uploaded files of a urlencoded or multipart/form-data body."""
    if content_type.startswith("multipart/form-data"):
        head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        params: dict[str, str] = {}
        files: dict[str, tuple[str, bytes]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None:
                files[name] = (filename, payload)
            else:
                params[name] = payload.decode("utf-8")
        return params, files
    if content_type.startswith("application/json"):
        data = json.loads(body or b"{}")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}, {}
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)), {}


def _make_handler(fake: FakeTelegram):
    """The request handler class bound to one stand-in."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - quiet: request lines carry the token
            """Stay silent."""

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            """Write one response."""
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _json(self, status: int, payload: dict) -> None:
            """Write a Bot API JSON answer."""
            self._send(status, json.dumps(payload).encode())

        def do_GET(self) -> None:
            """File downloads (and GET-style method calls)."""
            path = unquote(urlsplit(self.path).path)
            prefix = f"/file/bot{fake.token}/"
            if path.startswith("/file/bot"):
                if not path.startswith(prefix):
                    return self._send(401, b"Unauthorized", "text/plain")
                file_path = path[len(prefix):]
                with fake._cond:
                    fake.downloads.append(file_path)
                    fake._cond.notify_all()
                for stored in list(fake.files.values()):
                    if stored.file_path == file_path:
                        return self._send(200, stored.data, "application/octet-stream")
                return self._send(404, b"Not Found", "text/plain")
            return self._method(dict(parse_qsl(urlsplit(self.path).query)), {})

        def do_POST(self) -> None:
            """Bot API method calls."""
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            params, files = _parse_body(self.headers.get("Content-Type", ""), body)
            return self._method(params, files)

        def _method(self, params: dict[str, str], files: dict[str, tuple[str, bytes]]) -> None:
            """Dispatch /bot<TOKEN>/<method>."""
            path = urlsplit(self.path).path
            prefix = f"/bot{fake.token}/"
            if not path.startswith(prefix):
                return self._json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            method = path[len(prefix):]
            if fake.down:
                return self._json(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
            if method != "getUpdates":
                fake._record(Call(method, params, files))
            try:
                result = fake.answer(method, params, files)
            except ApiError as err:
                return self._json(err.code, {"ok": False, "error_code": err.code, "description": err.description})
            except KeyError:
                return self._json(404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"})
            self._json(200, {"ok": True, "result": result})

    return Handler
