from typing import Any

class Pickler:
    def __init__(self, *, keys: bool = ..., **kwargs: Any) -> None: ...
