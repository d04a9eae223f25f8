"""Interoperability test: a standard Flight SQL client (the ADBC driver from PyPI) connects
to a running `agora demo` with a member's client certificate over mutual TLS, lists the
products of the ecosystem and queries them.

Usage: python adbc_flight_sql.py ECOSYSTEM_JSON
Prints one line per check; exits non-zero on the first failure.
"""

import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def connect(eco, member, as_member=None):
    """Connects to `member`'s node with the client certificate of `as_member`."""
    target = next(m for m in eco["members"] if m["id"] == member)
    holder = next(m for m in eco["members"] if m["id"] == (as_member or member))
    uri = target["exchange_url"].replace("https://", "grpc+tls://")
    return flight_sql.connect(
        uri,
        autocommit=True,
        db_kwargs={
            DatabaseOptions.TLS_ROOT_CERTS.value: read(eco["root_certificate"]),
            DatabaseOptions.MTLS_CERT_CHAIN.value: read(holder["client_certificate"]),
            DatabaseOptions.MTLS_PRIVATE_KEY.value: read(holder["client_key"]),
        },
    )


def main():
    eco = json.loads(read(sys.argv[1]))
    with connect(eco, "employment-agency") as conn:
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        tables = {
            (schema["db_schema_name"], table["table_name"])
            for catalog in objects
            for schema in catalog["catalog_db_schemas"] or []
            for table in schema["db_schema_tables"] or []
        }
        assert ("public", "job_seekers") in tables, tables
        assert ("city-hospital", "vacancies") in tables, tables
        assert ("tax-office", "annual_income") in tables, tables
        print(f"listed {len(tables)} products of the ecosystem")

        schema = conn.adbc_get_table_schema("job_seekers", db_schema_filter="public")
        assert "municipality" in schema.names, schema
        print("read the schema of job_seekers")

        with conn.cursor() as cur:
            cur.execute(
                "SELECT municipality, count(*) AS n FROM job_seekers "
                "GROUP BY municipality ORDER BY n DESC"
            )
            table = cur.fetch_arrow_table()
            assert table.num_rows > 0 and table.column_names == ["municipality", "n"]
            print(f"own product: {table.num_rows} municipalities")

            cur.execute('SELECT count(*) AS n FROM "city-hospital".vacancies')
            (n,) = cur.fetchone()
            assert n > 0, n
            print(f"open product of another member: {n} vacancies")

            try:
                cur.execute('SELECT * FROM "city-hospital".admissions')
                cur.fetchall()
            except Exception as e:  # the driver raises its own error classes
                assert "agreement" in str(e), e
                print("sensitive product of another member: refused, an agreement is needed")
            else:
                raise AssertionError("a sensitive product was served without an agreement")

            # Under the demo's fraud-prevention agreement the agency reads the tax office's
            # incomes, with pseudonyms instead of identifiers.
            cur.execute('SELECT person_id FROM "tax-office".annual_income LIMIT 1')
            (pseudonym,) = cur.fetchone()
            assert len(pseudonym) == 64, pseudonym
            print("agreed product of another member: served with pseudonyms")

            try:
                cur.execute("DROP TABLE job_seekers")
                cur.fetchall()
            except Exception as e:
                print("DDL refused")
            else:
                raise AssertionError("DDL was accepted")

            # Statements beyond the node's limits are refused with words that say so,
            # and the connection goes on.
            for sql, words in [
                ("SELECT " + "+".join(["1"] * 2000), "nests expressions"),
                ("SELECT " + "CAST(" * 40 + "1" + " AS INT)" * 40, "nests brackets"),
                ("SELECT " + "CASE WHEN true THEN " * 30 + "1" + " END" * 30, "CASE"),
            ]:
                try:
                    cur.execute(sql)
                    cur.fetchall()
                except Exception as e:
                    assert words in str(e), e
                else:
                    raise AssertionError("a statement beyond the limits was accepted")
            cur.execute("SELECT 1 AS one")
            assert cur.fetch_arrow_table().num_rows == 1
            print("statements beyond the limits refused, the connection goes on")

    # A member's client certificate does not open another member's node.
    try:
        with connect(eco, "tax-office", as_member="employment-agency") as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
    except Exception as e:
        assert "tools of tax-office" in str(e), e
        print("another member's node refused the certificate")
    else:
        raise AssertionError("another member's client certificate was accepted")
    print("ok")


if __name__ == "__main__":
    main()
