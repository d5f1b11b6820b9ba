"""FileDirDict: a PersiDict stored as one file per key in a local folder."""

from __future__ import annotations

import copy
import errno
import math
import os
from collections.abc import Iterator
from itertools import chain
from typing import Any, NoReturn, cast

from .backends.base import Location
from .backends.files import (
    FileBackend,
    FileNameTooLongError,
    PathCollisionError,
    UnsafeNameError,
    make_folders,
)
from .codecs import Codec
from .errors import batch_error
from .flags import ETagConditionFlag, ETagIfExists, Joker, RetrieveValueFlag, TransformingFunction, ValueType
from .keys import FileKey, Layout, NonEmptyPersiDictKey, NonEmptySafeStrTuple, SafeStrTuple, to_key
from .persi_dict import PLAIN_VALUE_TYPES
from .progress import Reporter
from .results import ConditionalOperationResult, OperationResult
from .store_dict import StoreDict

_DEFAULT_BASE_DIR = "__file_dir_dict__"
_REFUSALS = (FileNameTooLongError, PathCollisionError, UnsafeNameError)


class FileDirDict(StoreDict[ValueType]):
    """A persistent dict in a folder: key ``(c1, ..., cn)`` is the file ``c1'/.../cn'.<format>``.

    Each component ``ci'`` is ``ci`` plus ``"_"`` and the first ``digest_len``
    characters of its base32 md5 digest (a guard against case-insensitive
    filesystems), the layout of the published persidict. Writes are atomic
    (temporary file + ``os.replace``) and, with ``durable=True``, fsynced.
    With ``use_locks=True`` conditional operations and ``transform_item`` are
    atomic across threads and processes (``flock`` on the item's folder);
    use ``use_locks=False`` for synced folders (Dropbox, ...) that cannot
    carry locks: there they are check-then-act. ``dir_name`` is the older
    spelling of ``base_dir``.

    Name length: a key component becomes a file or folder name, which the
    filesystem limits to NAME_MAX bytes (``os.pathconf(base_dir,
    "PC_NAME_MAX")``, 255 on most). With the suffix and the extension, a
    key's last component may have at most NAME_MAX - digest_len - 1 -
    len("." + format) characters (246 with the defaults), the others NAME_MAX
    - digest_len - 1 (250); a whole path must stay under PATH_MAX (4096
    bytes). A longer key is refused on write with a ValueError
    (FileNameTooLongError) naming the key, the component and the limit,
    before anything is written; reading or deleting it finds nothing.

    With ``digest_len=0`` a key's folder can take the name of another key's
    file (key ``"a"`` is the file ``a.pkl``; key ``("a.pkl", "x")`` needs a
    folder ``a.pkl``): the second of the two to be written raises
    PathCollisionError (a BackendError) and nothing changes. A folder is
    never an item, even one named like an item.

    Writers killed mid-write leave hidden temporary files (``*.tmp#``):
    they are never items; ``remove_stale_temp_files()`` deletes old ones.

    What is an item. Exactly the regular files whose every path component
    carries this dict's digest suffix (for its ``digest_len``) and whose name
    ends in its format's extension. Anything else in the folder — foreign
    files (``notes.pkl``), files of another ``digest_len`` or format, hidden
    files and folders (``.git``, ``.venv``), links — is invisible to ``len``,
    iteration, ``clear`` and every read, never entered, and never written
    through or deleted. A key component starting with "." is stored with its
    suffix (``.x_abcd.pkl``), which proves it ours: it is an item like any
    other. With ``digest_len=0`` nothing proves it, so names starting with
    "." are never items: writing a key with such a component raises a
    ValueError (UnsafeNameError) naming the key, and reading it finds nothing.

    Links. ``base_dir`` may be a link: it is resolved once, when the dict is
    opened (``os.path.realpath``), and ``base_dir`` reports the real folder.
    Inside it no link is ever followed (files are opened with
    ``openat2(RESOLVE_NO_SYMLINKS)`` on Linux, or relative to their folder's
    descriptor with ``O_NOFOLLOW``): a link named
    like an item is no item (``KeyError``; a write replaces the link itself,
    never its target; a delete leaves it), and a link where a key's folder
    should be is never entered (reads find nothing, writes raise
    PathCollisionError).

    Batch operations (``get_many``, ``update``, ``set_many``,
    ``discard_many``) run 4 items at a time on a pool of threads by default.
    Keys that can never be stored here are reported before anything is
    written (a BatchError naming each); keys blocked on disk per key.

    ETags are ``mtime_ns:size:inode``; on file systems that keep timestamps
    to the second (ext3, ext4 with 128-byte inodes, HFS+, NFS exports...)
    they end in a per-write token kept in the extended attribute
    ``user.persidict.etag`` (or, without extended attributes, a digest of
    the content, which costs a read of the value per ETag there). Each
    store finds out on its first write; fine file systems pay nothing.
    """

    _files: FileBackend

    def __init__(
        self,
        *,
        base_dir: str | os.PathLike[str] = _DEFAULT_BASE_DIR,
        serialization_format: str | Codec = "pkl",
        append_only: bool = False,
        digest_len: int = 4,
        base_class_for_values: type | None = None,
        durable: bool = True,
        use_locks: bool = True,
        dir_name: str | os.PathLike[str] | None = None,
    ) -> None:
        folder = _resolve_base_dir(base_dir, dir_name)
        if not isinstance(durable, bool):
            raise TypeError(f"durable must be a bool, not {durable!r}")
        if not isinstance(use_locks, bool):
            raise TypeError(f"use_locks must be a bool, not {use_locks!r}")
        self._files = FileBackend(folder, durable=durable, use_locks=use_locks, dot_names=digest_len != 0)
        self._init_store(
            backend=self._files,
            root=(),
            serialization_format=serialization_format,
            append_only=append_only,
            base_class_for_values=base_class_for_values,
            digest_len=digest_len,
        )
        # On disk, a name starting with "." is hidden: no key unless its suffix proves it ours.
        self._layout = Layout(self._layout.extension, self._layout.digest_len, hidden=False)
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise ValueError(f"base_dir {folder!r} exists and is not a folder")
        blocker = make_folders(folder, durable=durable)
        if blocker == folder:
            raise ValueError(f"base_dir {folder!r} exists and is not a folder")
        if blocker is not None:
            raise ValueError(f"base_dir {folder!r} lies under a file, not a folder ({blocker!r})")

    @property
    def base_dir(self) -> str:
        """The absolute path of the folder holding this dict's files (links resolved when opened)."""
        root = self._root
        return os.path.join(self._files.base_dir, *root) if root else self._files.base_dir

    @property
    def durable(self) -> bool:
        """Whether every write is fsynced (file and folder) before it returns."""
        return self._files.durable

    @property
    def use_locks(self) -> bool:
        """Whether conditional operations are made atomic with folder locks."""
        return self._files.use_locks

    def remove_stale_temp_files(self, older_than: float = 3600.0) -> int:
        """Delete temporary files left by killed writers; return how many were deleted.

        Removes this dict's hidden temporary files (``.<name>.<host>.<pid>.<token>.tmp#``,
        in its folder and subfolders) last modified over ``older_than``
        seconds ago, and the folders that leaves empty. Items and foreign
        files are never touched. A live write's temporary file is as young as
        the write: pass a small ``older_than`` (0 removes all) only when no
        other writer runs.
        """
        if isinstance(older_than, bool) or not isinstance(older_than, int | float):
            raise TypeError(f"older_than must be a number of seconds, not {older_than!r}")
        if math.isnan(older_than) or older_than < 0:
            raise ValueError(f"older_than must be >= 0 seconds, not {older_than!r}")
        return self._files.remove_stale_temps(float(older_than), self._root, self._holds_keys)

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, sorted: ``FileDirDict(**d.get_params())`` opens the same folder."""
        files = self._files
        params = {
            **self._common_params(),
            "base_dir": self.base_dir,
            "digest_len": self.digest_len,
            "durable": files.durable,
            "use_locks": files.use_locks,
        }
        return dict(sorted(params.items()))

    # ------------------------------------------------------------ hot paths
    # One system call sequence each, and no Stat built when none is needed.

    def _get(self, key: NonEmptySafeStrTuple) -> ValueType:
        t = self._target(key)
        files = self._files
        data = files.read_bytes(t.loc)
        if data is None:
            raise self._missing(key)
        value: ValueType = t.coder.decode(key, data, lambda: files.path(t.loc))
        return value

    def _contains(self, key: NonEmptySafeStrTuple) -> bool:
        return self._files.exists(self._target(key).loc)

    def _missing(self, key: NonEmptySafeStrTuple) -> KeyError:
        """KeyError chained from the FileNotFoundError of the key's file (its ``__cause__``)."""
        e = KeyError(key)
        path = self._files.path(self._target(key).loc)
        e.__cause__ = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return e

    # ------------------------------------------------------------ writes
    # The backend knows locations only: its refusals are told again with the key.

    def __setitem__(self, key: NonEmptyPersiDictKey, value: ValueType | Joker) -> None:
        """Store ``value``; KEEP_CURRENT does nothing, DELETE_CURRENT deletes."""
        if type(key) is str and type(value) in PLAIN_VALUE_TYPES and self._plain_puts:
            # The hot path: a str key straight to its location (no joker, flag or PersiDict to rule on).
            loc = self._str_locs.get(key) or self._loc_of_str(key)
            if loc is not None:
                try:
                    data = self._coder.dump(value)
                except Exception:
                    data = self._coder.encode(to_key(key), value)  # raises the error naming the key
                try:
                    self._files.put(loc, data)
                except _REFUSALS as e:
                    self._refuse(to_key(key), e)
                return
        super().__setitem__(key, value)

    def _set(self, key: NonEmptySafeStrTuple, value: Any) -> None:
        try:
            if self._append_only:
                super()._set(key, value)  # create-only: a command for the interpreter
            else:
                t = self._target(key)
                self._files.put(t.loc, t.coder.encode(key, value))  # nothing to decide, no Stat wanted
        except _REFUSALS as e:
            self._refuse(key, e)

    def _serialised(self, key: NonEmptySafeStrTuple, value: Any) -> bytes:
        """The stored bytes of ``value``, once ``key`` is known to fit here (``update`` checks all first)."""
        payload: bytes = super()._serialised(key, value)
        try:
            self._files.check_writable(self._target(key).loc)
        except _REFUSALS as e:
            self._refuse(key, e)
        return payload

    def _write_items(
        self, items: list[tuple[NonEmptySafeStrTuple, Any]], workers: int, rep: Reporter | None
    ) -> None:
        """``update`` / ``set_many``: refuse, before the first write, every key that can never be stored here.

        Keys too long for the file system or with names that are never items
        are reported together (the exception itself for one key, else a
        BatchError naming each). What only the disk can tell (a file in the
        way of a key's folder: PathCollisionError) is found per key as it is
        written, and reported per key too.
        """
        failures: list[tuple[object, Exception]] = []
        check = self._files.check_writable
        for key, value in dict(items).items():
            if isinstance(value, Joker):
                continue
            try:
                check(self._target(key).loc)
            except _REFUSALS as e:
                try:
                    self._refuse(key, e)
                except _REFUSALS as named:
                    failures.append((key, named))
        if failures:
            raise batch_error("set_many", failures)
        super()._write_items(items, workers, rep)

    def _set_serialised(self, key: NonEmptySafeStrTuple, value: Any, payload: bytes) -> None:
        try:
            super()._set_serialised(key, value, payload)
        except _REFUSALS as e:
            self._refuse(key, e)

    def _set_item_if(
        self,
        key: NonEmptySafeStrTuple,
        value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        try:
            return super()._set_item_if(key, value, expected_etag, condition, retrieve)
        except _REFUSALS as e:
            self._refuse(key, e)

    def _setdefault_if(
        self,
        key: NonEmptySafeStrTuple,
        default_value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        try:
            return super()._setdefault_if(key, default_value, expected_etag, condition, retrieve)
        except _REFUSALS as e:
            self._refuse(key, e)

    def _transform_item(
        self, key: NonEmptySafeStrTuple, transformer: TransformingFunction, max_attempts: int | None
    ) -> OperationResult[ValueType]:
        try:
            return super()._transform_item(key, transformer, max_attempts)
        except _REFUSALS as e:
            self._refuse(key, e)

    def _refuse(
        self, key: NonEmptySafeStrTuple, e: FileNameTooLongError | PathCollisionError | UnsafeNameError
    ) -> NoReturn:
        """Raise the backend's refusal of ``key`` again, naming the key."""
        if isinstance(e, PathCollisionError):
            raise PathCollisionError(e.message, backend=e.backend, operation=e.operation, key=key) from None
        index = None if e.index is None or e.index < len(self._root) else e.index - len(self._root)
        if isinstance(e, UnsafeNameError):
            raise UnsafeNameError(
                f"Key {key!r} cannot be stored in {self.base_dir!r}: {self._unsafe_problem(key, index, e)}. "
                "Nothing was written.",
                name=e.name,
                index=e.index,
            ) from None
        if index is not None:
            component = key[index]
            overhead = e.size - len(os.fsencode(component))
            problem = (
                f"its component {component!r} ({len(component)} characters) would be the "
                f"{'file' if index == len(key) - 1 else 'folder'} name {e.name!r} of {e.size} bytes, "
                f"over the limit of {e.limit} bytes per name (NAME_MAX) of this filesystem; "
                f"here that component may have at most {e.limit - overhead} characters"
            )
        else:
            problem = str(e)
        raise FileNameTooLongError(
            f"Key {key!r} cannot be stored in {self.base_dir!r}: {problem}. Nothing was written.",
            name=e.name,
            size=e.size,
            limit=e.limit,
            index=index,
        ) from None

    def _unsafe_problem(self, key: NonEmptySafeStrTuple, index: int | None, e: UnsafeNameError) -> str:
        """Why the backend refused a name of ``key``, told in terms of the key."""
        if index is None or not e.name.startswith("."):
            return str(e)
        return (
            f"its component {key[index]!r} starts with '.', and with digest_len=0 a name starting with '.' "
            "is hidden, never an item (hidden files and folders such as .git or .venv are not this dict's); "
            "open the dict with digest_len > 0 to store such keys"
        )

    # ------------------------------------------------------------ listing
    # One pass of os.scandir; folder names are decoded once per folder, file
    # names through the layout's bounded cache.

    def _holds_keys(self, name: str) -> bool:
        """Whether the folder ``name`` may hold this dict's keys (so that listings enter it)."""
        return self._layout.decode_part(name) is not None

    def _walk_keys(
        self,
    ) -> Iterator[tuple[Location, list[NonEmptySafeStrTuple], list[os.DirEntry[str]]]]:
        """Stream (folder parts, keys, their entries) in chunks, one chunk per batch of a folder's files.

        Only folders named like key components are entered, only regular
        files named like items are keys; links are neither.
        """
        layout = self._layout
        file_keys = layout.file_keys
        folder: Location | None = None
        prefix: tuple[str, ...] | None = ()
        names: dict[str, FileKey] = {}
        for parts, entries in self._files.walk(self._root, self._holds_keys):
            if parts is not folder:
                folder = parts
                prefix, names = layout.folder(parts)
            if prefix is None:
                continue
            if entries[0].name not in names:  # most likely a first listing: decode them all
                decoded = file_keys(prefix, names, [e.name for e in entries])
                if all(decoded):
                    yield parts, cast(list[NonEmptySafeStrTuple], decoded), entries
                else:
                    pairs = [(k, e) for k, e in zip(decoded, entries, strict=True) if k]
                    yield parts, [k for k, _ in pairs], [e for _, e in pairs]
                continue
            keys: list[NonEmptySafeStrTuple] = []
            found: list[os.DirEntry[str]] = []
            unknown: list[os.DirEntry[str]] = []
            get = names.get
            for entry in entries:
                key = get(entry.name)
                if key:
                    keys.append(key)
                    found.append(entry)
                elif key is None:
                    unknown.append(entry)
            if unknown:  # names not decoded yet: files added since this folder was listed
                decoded = file_keys(prefix, names, [e.name for e in unknown])
                for entry, key in zip(unknown, decoded, strict=True):
                    if key:
                        keys.append(key)
                        found.append(entry)
            yield parts, keys, found

    def _iter_keys(self) -> Iterator[NonEmptySafeStrTuple]:
        return chain.from_iterable(keys for _, keys, _ in self._walk_keys())

    def _iter_keys_and_timestamps(self) -> Iterator[tuple[NonEmptySafeStrTuple, float]]:
        for _, keys, entries in self._walk_keys():
            for key, entry in zip(keys, entries, strict=True):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted meanwhile
                yield key, st.st_mtime_ns / 1e9

    def __len__(self) -> int:
        """The number of stored items (temporary, foreign and hidden files and links are not counted)."""
        n = 0
        for _, keys, _ in self._walk_keys():
            n += len(keys)
        return n

    def _clear(self) -> None:
        """Delete every item of this dict (and of its subdicts); foreign and hidden files and links stay."""
        root = self._root
        self._files.delete_many(
            root + parts + (entry.name,) for parts, _, entries in self._walk_keys() for entry in entries
        )

    def _subdict(self, prefix: SafeStrTuple) -> FileDirDict[ValueType]:
        """The dict stored in the subfolder of ``prefix`` (created on first write), on the same backend."""
        sub = copy.copy(self)
        sub._root = self._root + self._layout.encode_prefix(prefix)
        sub._layout = self._layout.fresh()
        return sub


def _resolve_base_dir(base_dir: str | os.PathLike[str], dir_name: str | os.PathLike[str] | None) -> str:
    """The real base folder (links resolved) from ``base_dir`` or its older spelling ``dir_name``."""
    given = {"base_dir": _folder_path("base_dir", base_dir)}
    if dir_name is not None:
        given["dir_name"] = _folder_path("dir_name", dir_name)
    folder = os.path.realpath(os.path.abspath(given["base_dir"]))
    if dir_name is None:
        return folder
    old = os.path.realpath(os.path.abspath(given["dir_name"]))
    if given["base_dir"] != _DEFAULT_BASE_DIR and old != folder:
        raise ValueError(
            f"base_dir={given['base_dir']!r} and dir_name={given['dir_name']!r} disagree; "
            "dir_name is the older spelling of base_dir: give one"
        )
    return old


def _folder_path(name: str, value: object) -> str:
    """``value`` as a folder path; TypeError or ValueError naming the parameter ``name`` otherwise."""
    if value is None:
        raise ValueError(f"{name} must name a folder, not None (pass '.' for the current folder)")
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a str or os.PathLike naming a folder, not {value!r}")
    path = os.fspath(value)
    if not isinstance(path, str):
        raise TypeError(f"{name} must be a str or os.PathLike of str, not {value!r}")
    if not path:
        raise ValueError(f"{name} must name a folder, not '' (pass '.' for the current folder)")
    if "\0" in path:
        raise ValueError(f"{name} must name a folder, not {path!r} (it holds a NUL character)")
    return path
