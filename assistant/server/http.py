"""Small HTTP helpers every part of the server shares: the JSON error body, the client's address, the paths."""

from __future__ import annotations

from fastapi.responses import JSONResponse

API_PREFIX = "/api/"
STAFF_PATH = "/staff"


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def client_address(scope) -> str:
    return (scope.get("client") or ("unknown", 0))[0]
