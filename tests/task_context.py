"""What operators' ``execute`` uses of a task instance in tests: XCom pushes, checked to be JSON."""

from __future__ import annotations

import json


class FakeTI:
    """Records XCom pushes; a value that is not JSON-serialisable fails the test at once."""

    def __init__(self) -> None:
        self.xcoms: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        json.dumps(value)
        self.xcoms[key] = value
