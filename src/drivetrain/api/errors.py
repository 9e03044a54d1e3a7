"""Errors for bad input: each names the file, the document, the field path and what was expected."""

from __future__ import annotations

from dataclasses import dataclass, field

from drivetrain.errors import DrivetrainError


@dataclass(frozen=True)
class FieldError:
    path: str  # dotted field path, e.g. "spec.services.decode.multinode.nodeCount"
    message: str
    file: str | None = None
    document: int | None = None  # 0-based index of the YAML document in the file
    line: int | None = None
    column: int | None = None

    def located(self, file: str | None = None, document: int | None = None) -> FieldError:
        return FieldError(
            self.path,
            self.message,
            self.file if self.file is not None else file,
            self.document if self.document is not None else document,
            self.line,
            self.column,
        )

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.document is not None:
            where += f" (document {self.document + 1})"
        path = f" {self.path}:" if self.path else ""
        return f"{where}:{path} {self.message}"


@dataclass
class InvalidGraph(DrivetrainError):
    """One or more problems with the input; ``errors`` lists every one found."""

    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)
