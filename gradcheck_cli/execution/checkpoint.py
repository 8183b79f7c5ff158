"""A resumable check's record of finished chunks: append-only, crash-safe.

The moves a check asks for are a deterministic sequence (the same function,
parameters and settings ask for the same moves in the same order), so finished
work is recorded by its position in that sequence: a rerun answers those moves
from the file and evaluates the rest.  Each record also carries the digest of
its moves, so a run that asks for something else at that position is told so
rather than given stale numbers.

Notes
-----
Why it cannot be corrupted.  The file is one header line and one line per
finished chunk, each ending with a CRC of its text, written with one ``write``,
flushed and synced before the chunk counts as recorded.  A crash mid-write leaves
at most a partial last line: reading stops at the first line that does not
check out, and the file is cut back to the last good line before anything new is
appended.  Values are stored as their exact bytes (base64), never as decimal text.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.errors import InputError

Array = npt.NDArray[Any]
FORMAT = "gradcheck checkpoint 1"


def _encode(result: dict[str, Array]) -> dict[str, list[Any]]:
    return {
        k: [str(v.dtype), list(v.shape), base64.b64encode(np.ascontiguousarray(v).tobytes()).decode("ascii")]
        for k, v in result.items()
    }


def _decode(data: Any) -> dict[str, Array]:
    """A record's arrays; ``ValueError`` naming what is wrong when they are not ones
    ``_encode`` writes (numbers only: an object dtype is never made from the file)."""
    if not isinstance(data, dict):
        raise ValueError("its result is not a table of arrays")
    out = {}
    for k, item in data.items():
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str) and isinstance(item[2], str)):
            raise ValueError(f"{k} is not [dtype, shape, bytes]")
        dtype_text, shape, text = item
        try:
            dtype = np.dtype(dtype_text)
        except TypeError:
            raise ValueError(f"{k} has no dtype but {dtype_text!r}") from None
        if dtype.kind not in "biufc" or not isinstance(shape, list) or not all(_count(n) for n in shape):
            raise ValueError(f"{k} is not an array of numbers ({dtype_text}, shape {shape})")
        try:
            raw = base64.b64decode(text, validate=True)
        except binascii.Error:
            raise ValueError(f"{k} is not base64 text") from None
        if len(raw) != dtype.itemsize * math.prod(shape):
            raise ValueError(f"{k} holds {len(raw)} bytes, not the {dtype_text} array of shape {shape}")
        out[k] = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    return out


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _record(payload: dict[str, Any]) -> tuple[int, int, str, dict[str, Array]]:
    """``(at, count, moves digest, result)`` of a record line."""
    at, count, moves = payload.get("at"), payload.get("n"), payload.get("moves")
    if not (_count(at) and _count(count) and count and isinstance(moves, str)):
        raise ValueError("its position, count or digest is missing or not what gradcheck writes")
    assert isinstance(at, int) and isinstance(count, int)
    return at, count, moves, _decode(payload.get("result"))


def _line(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, separators=(",", ":"))
    return f"{text}\t{zlib.crc32(text.encode()):08x}\n"


def _parse(line: str) -> dict[str, Any] | None:
    """A line's payload, or None when it is partial or damaged."""
    if not line.endswith("\n"):
        return None
    text, _, crc = line[:-1].rpartition("\t")
    try:
        if int(crc, 16) != zlib.crc32(text.encode()):
            return None
        payload = json.loads(text)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


class Checkpoint:
    """Finished chunks of one check in ``path``; ``digest`` identifies the check (its
    function, parameters and settings).  A file written by another check is refused.
    ``shown``: the path as the user gave it, for messages (default: ``path``)."""

    def __init__(self, path: str | os.PathLike[str], digest: str, shown: str | None = None) -> None:
        self.path = Path(shown if shown is not None else path)  # what messages name
        self._where = Path(path)
        self.digest = digest
        self.records: dict[int, tuple[int, str, dict[str, Array]]] = {}  # start -> (count, moves digest, result)
        self.replayed = 0  # evaluations answered from the file in this run
        good = 0
        if self._where.exists():
            if not self._where.is_file():
                raise InputError(f"{str(self.path)!r} is not a regular file; give a file path", option="checkpoint")
            good = self._read()
        try:
            self._file = open(self._where, "r+b" if self._where.exists() else "wb")  # noqa: SIM115 (kept open for the run)
        except OSError as exc:
            raise InputError(
                f"cannot write the checkpoint {str(self.path)!r} ({exc.strerror}); give a writable path",
                option="checkpoint",
            ) from None
        self._file.truncate(good)
        self._file.seek(good)
        if good == 0:
            self._write({"format": FORMAT, "digest": digest})

    def _read(self) -> int:
        """Load the records; the byte length of the part that checks out."""
        with open(self._where, "rb") as f:
            data = f.read()
        if not data:
            return 0
        lines = data.decode("utf-8", errors="replace").splitlines(keepends=True)
        header = _parse(lines[0])
        if header is None or header.get("format") != FORMAT:
            raise InputError(
                f"{str(self.path)!r} is not a gradcheck checkpoint; give a new file, or the one a run of this "
                f"check wrote",
                option="checkpoint",
            )
        if header.get("digest") != self.digest:
            raise InputError(
                f"{str(self.path)!r} was written by a different check (another function, parameters or settings); "
                f"give a new file, or delete it to start over",
                option="checkpoint",
            )
        good = len(lines[0].encode())
        for number, line in enumerate(lines[1:], start=2):
            payload = _parse(line)
            if payload is None:
                break  # a line cut short by a crash: the file continues from the one before
            try:
                at, count, moves, result = _record(payload)
            except ValueError as exc:
                # Its checksum holds, so no crash wrote it: the file was edited or made.
                raise InputError(
                    f"{str(self.path)!r} line {number} is no record gradcheck writes ({exc}); give a new file, "
                    f"or delete it to start over",
                    option="checkpoint",
                ) from None
            self.records[at] = (count, moves, result)
            good += len(line.encode())
        return good

    def validate(self, at: int, result: dict[str, Array], expected: dict[str, Array]) -> None:
        """A replayed record must hold the arrays an evaluation of its moves would:
        the same names, dtypes and shapes as ``expected``."""
        for name, array in expected.items():
            held = result.get(name)
            if held is None or held.dtype != array.dtype or held.shape != array.shape:
                raise InputError(
                    f"{str(self.path)!r} holds, at evaluation {at}, arrays other than this check's ({name}); give a "
                    f"new file, or delete it to start over",
                    option="checkpoint",
                )

    def _write(self, payload: dict[str, Any]) -> None:
        self._file.write(_line(payload).encode())
        self._file.flush()
        os.fsync(self._file.fileno())

    def covering(self, start: int, count: int) -> list[tuple[int, int, str, dict[str, Array]]]:
        """Records inside moves ``start .. start + count``, as ``(a, b, digest, result)``
        relative to ``start``, in order."""
        found = []
        for at, (n, moves, result) in self.records.items():
            if start <= at and at + n <= start + count:
                found.append((at - start, at - start + n, moves, result))
        found.sort(key=lambda r: r[0])
        return found

    def mismatch(self, at: int) -> InputError:
        """The error for a run that asks, at move ``at``, for moves other than recorded."""
        return InputError(
            f"{str(self.path)!r} does not match this run at evaluation {at}: the check asks for other moves there "
            f"(did the code change?); give a new file, or delete it to start over",
            option="checkpoint",
        )

    def record(self, start: int, count: int, moves: str, result: dict[str, Array]) -> None:
        self.records[start] = (count, moves, result)
        self._write({"at": start, "n": count, "moves": moves, "result": _encode(result)})

    def close(self) -> None:
        self._file.close()
