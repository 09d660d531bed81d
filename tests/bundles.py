"""A hand-written bundle small enough to check by eye, with one planted bad row per rule."""

from __future__ import annotations

from pathlib import Path

GOOD = {
    "merchants": "merchant_id,created_at,category\nM1,2026-01-01T00:00:00Z,books\nM2,2026-01-02,toys\n",
    "products": "product_id,merchant_id,category,price\nP1,M1,books,10\n007,M2,toys,5\n7,M2,toys,6\n",
    "users": (
        "user_id,created_at,country,feat_kyc\n"
        "U1,2026-01-01T00:00:00+02:00,DE,1\nU2,2026-01-03T00:00:00,US,\n"
    ),
    "devices": "device_id,kind,first_seen\nD1,ios,2026-01-01\nD2,web,2026-01-01\n",
    "logins": "user_id,device_id,ts\nU1,D1,2026-01-03\nU1,D1,2026-01-04\nU2,D1,2026-01-05\n",
    "orders": (
        "order_id,user_id,product_id,amount,ts,status,device_id\n"
        "O1,U1,P1,10,2026-01-05T10:00:00Z,paid,D1\n"
        "O2,U2,007,5,2026-01-05T11:00:00Z,chargeback,\n"
    ),
    "reviews": (
        "review_id,user_id,product_id,rating,text,ts\n"
        'R1,U1,P1,5,"Great, really ""great""\nbook",2026-01-06\n'
    ),
    "labels": "user_id,fraud,default\nU1,0,\nU2,1,1\n",
    "rings": "ring_id,user_id\nRING1,U2\n",
}

# (table, extra CSV line, rule expected in rejects.csv)
BAD_ROWS = [
    ("orders", "O3,U1,P404,10,2026-01-05T10:00:00Z,paid,", "unknown_reference"),
    ("orders", "O4,U1,P1,10,2026-01-05T10:00:00Z,stolen,", "bad_enum"),
    ("orders", "O5,U1,P1,-3,2026-01-05T10:00:00Z,paid,", "negative_amount"),
    ("orders", "O1,U1,P1,10,2026-01-05T10:00:00Z,paid,", "duplicate_id"),
    ("orders", "O6,U1,P1,10,yesterday,paid,", "bad_timestamp"),
    ("reviews", "R2,U1,P1,7,too good,2026-01-06", "rating_out_of_range"),
    ("users", "U1,2026-01-01,US,", "duplicate_id"),
    ("devices", "D3,tablet,2026-01-01", "bad_enum"),
]


def write_bundle(
    folder: Path, bad: bool = False, drop_column: tuple[str, str] | None = None
) -> Path:
    """Write the good bundle, optionally with the bad rows or without one required column."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = dict(GOOD)
    if bad:
        for table, line, _ in BAD_ROWS:
            tables[table] = tables[table] + line + "\n"
    if drop_column:
        table, column = drop_column
        lines = tables[table].splitlines()
        header = lines[0].split(",")
        tables[table] = ",".join(c for c in header if c != column) + "\n"
    for table, text in tables.items():
        (folder / f"{table}.csv").write_text(text, encoding="utf-8")
    return folder
