"""`journeys audience-upload` reads CSV as CSV (issue 14, item 11): a UTF-8 BOM before the
header, quoted ids with commas, and lines that hold no customer id, reported."""

from __future__ import annotations

from pathlib import Path

from journeys.cli.main import read_ids


def test_csv_with_bom_quotes_and_bad_lines(tmp_path: Path) -> None:
    source = tmp_path / "ids.csv"
    source.write_bytes(
        "\ufeffcustomer_id,plan\n"
        '"cust,1",gold\n'
        "cust-2,silver\n"
        "\n"
        '"bad\x01id",x\n'
        f"{'u' * 201},x\n"
        "cust-3\n".encode()
    )
    ids, rejected = read_ids(source)
    assert ids == ["cust,1", "cust-2", "cust-3"]  # 3 customers, not 4 ids
    assert [line for line, _ in rejected] == [5, 6]


def test_one_id_per_line_without_a_header(tmp_path: Path) -> None:
    source = tmp_path / "ids.txt"
    source.write_text("a\nb\n id \n")
    assert read_ids(source) == (["a", "b", "id"], [])
