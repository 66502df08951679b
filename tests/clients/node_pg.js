// node-pg (npm `pg`): simple queries without parameters, the extended protocol (unnamed
// statement, text results) with them, named prepared statements with `name`.
// Run by run_clients.py with NODE_PATH at its npm folder and TZ=UTC (node-pg reads a
// timestamp without time zone as local time).

const { Client } = require("pg");

const CLIENT = "node-pg";
const config = {
  host: process.env.EDDY_PG_HOST || "127.0.0.1",
  port: Number(process.env.EDDY_PG_PORT || 5433),
  user: "eddy",
  database: "eddy",
  connectionTimeoutMillis: 10000,
  query_timeout: 30000,
};

function eq(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}

async function check(name, body) {
  const client = new Client(config);
  try {
    await client.connect();
    await body(client);
    console.log(`PASS ${CLIENT} ${name}`);
  } catch (e) {
    const msg = `${e.name}: ${e.message}`.replace(/\s+/g, " ").slice(0, 600);
    console.log(`FAIL ${CLIENT} ${name}: ${msg}`);
  } finally {
    await client.end().catch(() => {});
  }
}

async function main() {
  await check("connect", async (c) => {
    const r = await c.query("SELECT 1 AS one");
    eq(r.rows.map((row) => Number(row.one)), [1], "SELECT 1 AS one");
  });

  await check("int_literal_type", async (c) => {
    // Postgres types the literal 1 as int4, which node-pg returns as a number (int8: a string).
    const r = await c.query("SELECT 1 AS one");
    eq(r.rows, [{ one: 1 }], "SELECT 1 AS one");
  });

  await check("count_sum", async (c) => {
    // int8 comes back as a string in node-pg.
    const r = await c.query("SELECT count(*) AS n, sum(id) AS s FROM all_bids");
    eq(r.rows, [{ n: "1000", s: "500500" }], "count, sum");
  });

  await check("param_query", async (c) => {
    const r = await c.query("SELECT id, price FROM all_bids WHERE id = $1", [42]);
    eq(r.rows, [{ id: "42", price: 420 }], "rows");
    if (typeof r.rows[0].price !== "number") throw new Error(`price is ${typeof r.rows[0].price}`);
    eq(r.command, "SELECT", "command");
  });

  await check("timestamp", async (c) => {
    const r = await c.query("SELECT ts FROM all_bids WHERE id = $1", [42]);
    if (!(r.rows[0].ts instanceof Date)) throw new Error(`ts is ${typeof r.rows[0].ts}: ${r.rows[0].ts}`);
    eq(r.rows[0].ts.toISOString(), "1970-01-01T00:00:42.000Z", "ts");
  });

  await check("per_bidder", async (c) => {
    const r = await c.query({ text: "SELECT bidder, window_start, bids FROM per_bidder ORDER BY bidder", rowMode: "array" });
    eq(
      r.rows.map(([b, w, n]) => [b, w.toISOString(), n]),
      [
        [0, "1970-01-01T00:16:40.000Z", "1"],
        [1, "1970-01-01T00:15:00.000Z", "25"],
        [2, "1970-01-01T00:15:00.000Z", "25"],
        [3, "1970-01-01T00:15:00.000Z", "25"],
      ],
      "rows",
    );
  });

  await check("named_statement", async (c) => {
    for (const id of [3, 4, 5]) {
      const r = await c.query({ name: "price_of", text: "SELECT price FROM all_bids WHERE id = $1", values: [id] });
      eq(r.rows, [{ price: id * 10 }], `id ${id}`);
    }
  });

  await check("fields", async (c) => {
    const r = await c.query("SELECT id, bidder, price, ts FROM all_bids WHERE id = $1", [1]);
    eq(r.fields.map((f) => [f.name, f.dataTypeID]), [["id", 20], ["bidder", 23], ["price", 701], ["ts", 1114]], "fields");
  });
}

main()
  .catch((e) => console.log(`FAIL ${CLIENT} program: ${String(e).replace(/\s+/g, " ")}`))
  .finally(() => process.exit(0));
