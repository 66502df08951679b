"""Npgsql 4.0.17 (the driver Power BI Desktop bundles), replayed: the three type-loading
queries it runs on every new connection, as text-format simple queries (copied verbatim from
../shared/pgwire-clients/npgsql-4.0.17-typeload.sql), and the DISCARD ALL it sends when it
reuses a pooled connection. If any fails, Power BI cannot connect."""

from common import DB, HOST, PORT, USER, Checks, eq, main_guard

import psycopg2

C = Checks("npgsql")

TYPES_SQL = """\
SELECT ns.nspname, a.typname, a.oid, a.typrelid, a.typbasetype,
CASE WHEN pg_proc.proname='array_recv' THEN 'a' ELSE a.typtype END AS type,
CASE
  WHEN pg_proc.proname='array_recv' THEN a.typelem
  WHEN a.typtype='r' THEN rngsubtype
  ELSE 0
END AS elemoid,
CASE
  WHEN pg_proc.proname IN ('array_recv','oidvectorrecv') THEN 3    /* Arrays last */
  WHEN a.typtype='r' THEN 2                                        /* Ranges before */
  WHEN a.typtype='d' THEN 1                                        /* Domains before */
  ELSE 0                                                           /* Base types first */
END AS ord
FROM pg_type AS a
JOIN pg_namespace AS ns ON (ns.oid = a.typnamespace)
JOIN pg_proc ON pg_proc.oid = a.typreceive
LEFT OUTER JOIN pg_class AS cls ON (cls.oid = a.typrelid)
LEFT OUTER JOIN pg_type AS b ON (b.oid = a.typelem)
LEFT OUTER JOIN pg_class AS elemcls ON (elemcls.oid = b.typrelid)
LEFT OUTER JOIN pg_range ON (pg_range.rngtypid = a.oid) 
WHERE
  a.typtype IN ('b', 'r', 'e', 'd') OR         /* Base, range, enum, domain */
  (a.typtype = 'c' AND cls.relkind='c') OR /* User-defined free-standing composites (not table composites) by default */
  (pg_proc.proname='array_recv' AND (
    b.typtype IN ('b', 'r', 'e', 'd') OR       /* Array of base, range, enum, domain */
    (b.typtype = 'p' AND b.typname IN ('record', 'void')) OR /* Arrays of special supported pseudo-types */
    (b.typtype = 'c' AND elemcls.relkind='c')  /* Array of user-defined free-standing composites (not table composites) */
  )) OR
  (a.typtype = 'p' AND a.typname IN ('record', 'void'))  /* Some special supported pseudo-types */
ORDER BY ord"""

COMPOSITES_SQL = """\
SELECT typ.oid, att.attname, att.atttypid
FROM pg_type AS typ
JOIN pg_namespace AS ns ON (ns.oid = typ.typnamespace)
JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
JOIN pg_attribute AS att ON (att.attrelid = typ.typrelid)
WHERE
  (typ.typtype = 'c' AND cls.relkind='c') AND
  attnum > 0 AND     /* Don't load system attributes */
  NOT attisdropped
ORDER BY typ.oid, att.attnum"""

ENUMS_SQL = """\
SELECT pg_type.oid, enumlabel
FROM pg_enum
JOIN pg_type ON pg_type.oid=enumtypid
ORDER BY oid, enumsortorder"""



def run(sql):
    conn = psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=DB, connect_timeout=10)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def check_types():
    rows = run(TYPES_SQL)
    # Npgsql drops a type whose typreceive has no pg_proc row: the types Eddy's tables use
    # must all be there, as base types ('b'), with their arrays ('a').
    kinds = {(r[1], r[5]) for r in rows}
    want = [("int4", "b"), ("int8", "b"), ("float8", "b"), ("text", "b"), ("varchar", "b"), ("bool", "b"),
            ("timestamp", "b"), ("timestamptz", "b"), ("date", "b"), ("numeric", "b"), ("_int4", "a"), ("_text", "a")]
    missing = [w for w in want if w not in kinds]
    if missing:
        raise AssertionError(f"missing (typname, type) {missing} among {len(rows)} rows")


def check_composites():
    eq(run(COMPOSITES_SQL), [])


def check_enums():
    eq(run(ENUMS_SQL), [])


def check_discard_all():
    eq(run("DISCARD ALL"), None)


def main():
    C.run("typeload_types", check_types)
    C.run("typeload_composites", check_composites)
    C.run("typeload_enums", check_enums)
    C.run("discard_all", check_discard_all)


if __name__ == "__main__":
    main_guard("npgsql", main)
