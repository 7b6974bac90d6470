"""Words with positions grouped into lines and cells, the way a reader sees a printed table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median


@dataclass(frozen=True)
class Word:
    """A run of non-space characters and its box, in points from the page's top left corner."""

    text: str
    left: float
    top: float
    right: float
    bottom: float

    @property
    def height(self) -> float:
        """The box's height."""
        return max(self.bottom - self.top, 0.1)

    @property
    def middle(self) -> float:
        """The vertical centre."""
        return (self.top + self.bottom) / 2


@dataclass(frozen=True)
class PageText:
    """The words of one page and its size in points."""

    number: int
    width: float
    height: float
    words: Sequence[Word]


@dataclass(frozen=True)
class Cell:
    """Words of one line close enough together to be read as one table cell."""

    words: tuple[Word, ...]

    @property
    def text(self) -> str:
        """The words joined by spaces."""
        return " ".join(word.text for word in self.words)

    @property
    def left(self) -> float:
        """Left edge."""
        return self.words[0].left

    @property
    def right(self) -> float:
        """Right edge."""
        return max(word.right for word in self.words)

    @property
    def center(self) -> float:
        """Horizontal centre."""
        return (self.left + self.right) / 2


@dataclass(frozen=True)
class Line:
    """The cells of one printed line, left to right."""

    cells: tuple[Cell, ...]

    @property
    def words(self) -> list[Word]:
        """Every word of the line."""
        return [word for cell in self.cells for word in cell.words]

    @property
    def text(self) -> str:
        """The cells joined by two spaces."""
        return "  ".join(cell.text for cell in self.cells)

    @property
    def top(self) -> float:
        """Top edge."""
        return min(word.top for word in self.words)

    @property
    def bottom(self) -> float:
        """Bottom edge."""
        return max(word.bottom for word in self.words)


def group_lines(words: Sequence[Word]) -> list[Line]:
    """Words that overlap vertically form a line; gaps wider than about a character split cells."""
    ordered = sorted((w for w in words if w.text.strip()), key=lambda w: (w.middle, w.left))
    rows: list[list[Word]] = []
    row_middle = row_height = 0.0
    for word in ordered:
        if rows and abs(word.middle - row_middle) <= max(row_height, word.height) * 0.5:
            row = rows[-1]
            row.append(word)
            # Running means keep grouping linear in the number of words.
            row_middle += (word.middle - row_middle) / len(row)
            row_height += (word.height - row_height) / len(row)
            continue
        rows.append([word])
        row_middle, row_height = word.middle, word.height
    return [_line(row) for row in rows]


def _line(words: list[Word]) -> Line:
    words = sorted(words, key=lambda w: w.left)
    height = median(w.height for w in words)
    threshold = max(height * 0.9, 4.0)
    cells: list[list[Word]] = [[words[0]]]
    for word in words[1:]:
        gap = word.left - cells[-1][-1].right
        if gap > threshold:
            cells.append([word])
        else:
            cells[-1].append(word)
    return Line(tuple(Cell(tuple(cell)) for cell in cells))
