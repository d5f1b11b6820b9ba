from typing import Any

class Unpickler:
    def __init__(self, *, keys: bool = ..., **kwargs: Any) -> None: ...
