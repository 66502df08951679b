// pgjdbc (Debian's libpostgresql-jdbc-java, 42.5): the extended protocol for everything,
// unnamed statements until a PreparedStatement has run 5 times, then a named one (S_1);
// DatabaseMetaData answers from pg_catalog. Compiled and run by run_clients.py (TZ=UTC).

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.Statement;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

public class JdbcClient {
    static final String CLIENT = "pgjdbc";
    static String url;

    interface Check {
        void run(Connection c) throws Exception;
    }

    static void check(String name, Check body) {
        try (Connection c = DriverManager.getConnection(url, "eddy", "")) {
            body.run(c);
            System.out.println("PASS " + CLIENT + " " + name);
        } catch (Throwable e) {
            String msg = (e.getClass().getSimpleName() + ": " + e.getMessage()).replaceAll("\\s+", " ");
            if (msg.length() > 600) msg = msg.substring(0, 600);
            System.out.println("FAIL " + CLIENT + " " + name + ": " + msg);
        }
        System.out.flush();
    }

    static void eq(Object got, Object want, String what) {
        if (!Objects.equals(got, want)) {
            throw new AssertionError(what + ": got " + got + ", want " + want);
        }
    }

    public static void main(String[] args) {
        String host = System.getenv().getOrDefault("EDDY_PG_HOST", "127.0.0.1");
        String port = System.getenv().getOrDefault("EDDY_PG_PORT", "5433");
        url = "jdbc:postgresql://" + host + ":" + port + "/eddy?connectTimeout=10&socketTimeout=30&ApplicationName=t_jdbc";

        check("connect", c -> {
            DatabaseMetaData md = c.getMetaData();
            eq(md.getDatabaseProductName(), "PostgreSQL", "product name");
            if (md.getDatabaseMajorVersion() < 9) throw new AssertionError("major version " + md.getDatabaseMajorVersion());
        });

        check("count_sum", c -> {
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*), sum(id) FROM all_bids")) {
                rs.next();
                eq(rs.getLong(1), 1000L, "count");
                eq(rs.getLong(2), 500500L, "sum");
            }
        });

        check("per_bidder", c -> {
            List<String> got = new ArrayList<>();
            try (Statement st = c.createStatement();
                 ResultSet rs = st.executeQuery("SELECT bidder, window_start, bids FROM per_bidder ORDER BY bidder")) {
                while (rs.next()) {
                    got.add(rs.getInt(1) + "|" + rs.getTimestamp(2).toLocalDateTime() + "|" + rs.getLong(3));
                }
            }
            eq(got, List.of("0|1970-01-01T00:16:40|1", "1|1970-01-01T00:15|25", "2|1970-01-01T00:15|25", "3|1970-01-01T00:15|25"), "rows");
        });

        // setFetchSize outside autocommit: pgjdbc reads through a portal 100 rows at a time
        // (Execute with a row limit, PortalSuspended, Execute again).
        check("fetch_size_portal", c -> {
            c.setAutoCommit(false);
            long n = 0, sum = 0;
            try (PreparedStatement ps = c.prepareStatement("SELECT id FROM all_bids ORDER BY id")) {
                ps.setFetchSize(100);
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        n++;
                        sum += rs.getLong(1);
                    }
                }
            }
            c.commit();
            eq(n, 1000L, "rows");
            eq(sum, 500500L, "sum");
        });

        // A prepared lookup by the primary key, run more than prepareThreshold times (named
        // statement): answered from the result table's key index.
        check("prepared_key_lookup", c -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT bids FROM per_bidder WHERE bidder = ?")) {
                for (int round = 0; round < 7; round++) {
                    ps.setInt(1, 1);
                    try (ResultSet rs = ps.executeQuery()) {
                        if (!rs.next()) throw new AssertionError("no row for bidder 1");
                        eq(rs.getLong(1), 25L, "bids of bidder 1");
                    }
                    ps.setInt(1, 9);
                    try (ResultSet rs = ps.executeQuery()) {
                        if (rs.next()) throw new AssertionError("a row for bidder 9");
                    }
                }
            }
        });

        check("prepared_param", c -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT id, price FROM all_bids WHERE id = ?")) {
                ps.setLong(1, 42);
                try (ResultSet rs = ps.executeQuery()) {
                    eq(rs.next(), true, "a row");
                    eq(rs.getLong(1), 42L, "id");
                    eq(rs.getObject(2), 420.0, "price (a Double)");
                    eq(rs.next(), false, "one row");
                }
            }
        });

        check("prepared_named_after_5", c -> {
            // The 5th execution on switches to the named statement S_1 (prepareThreshold).
            try (PreparedStatement ps = c.prepareStatement("SELECT price FROM all_bids WHERE id = ?")) {
                for (int i = 1; i <= 8; i++) {
                    ps.setInt(1, i);
                    try (ResultSet rs = ps.executeQuery()) {
                        eq(rs.next(), true, "a row for " + i);
                        eq(rs.getDouble(1), i * 10.0, "price of " + i);
                    }
                }
            }
        });

        check("timestamp", c -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT ts FROM all_bids WHERE id = ?")) {
                ps.setLong(1, 42);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    eq(rs.getTimestamp(1).toLocalDateTime(), LocalDateTime.of(1970, 1, 1, 0, 0, 42), "getTimestamp");
                    eq(rs.getObject(1, LocalDateTime.class), LocalDateTime.of(1970, 1, 1, 0, 0, 42), "getObject(LocalDateTime)");
                }
            }
        });

        check("timestamp_param", c -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT id FROM all_bids WHERE ts = ?")) {
                ps.setTimestamp(1, java.sql.Timestamp.valueOf(LocalDateTime.of(1970, 1, 1, 0, 0, 42)));
                try (ResultSet rs = ps.executeQuery()) {
                    eq(rs.next(), true, "a row");
                    eq(rs.getLong(1), 42L, "id");
                }
            }
        });

        check("resultset_metadata", c -> {
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT id, bidder, price, ts FROM all_bids LIMIT 1")) {
                ResultSetMetaData m = rs.getMetaData();
                List<String> got = new ArrayList<>();
                for (int i = 1; i <= m.getColumnCount(); i++) got.add(m.getColumnName(i) + ":" + m.getColumnTypeName(i));
                eq(got, List.of("id:int8", "bidder:int4", "price:float8", "ts:timestamp"), "columns");
            }
        });

        check("metadata_schemas", c -> {
            List<String> got = new ArrayList<>();
            try (ResultSet rs = c.getMetaData().getSchemas()) {
                while (rs.next()) got.add(rs.getString("TABLE_SCHEM"));
            }
            if (!got.contains("public")) throw new AssertionError("no public schema in " + got);
        });

        check("metadata_tables", c -> {
            List<String> got = new ArrayList<>();
            try (ResultSet rs = c.getMetaData().getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) got.add(rs.getString("TABLE_NAME") + ":" + rs.getString("TABLE_TYPE"));
            }
            if (!got.contains("all_bids:TABLE") || !got.contains("per_bidder:TABLE")) {
                throw new AssertionError("getTables: " + got);
            }
        });

        check("metadata_columns", c -> {
            List<String> got = new ArrayList<>();
            try (ResultSet rs = c.getMetaData().getColumns(null, null, "all_bids", null)) {
                while (rs.next()) got.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME") + ":" + rs.getInt("DATA_TYPE"));
            }
            // java.sql.Types: BIGINT -5, INTEGER 4, DOUBLE 8, TIMESTAMP 93
            eq(got, List.of("id:int8:-5", "bidder:int4:4", "price:float8:8", "ts:timestamp:93"), "getColumns");
        });

        check("metadata_primary_keys", c -> {
            List<String> got = new ArrayList<>();
            try (ResultSet rs = c.getMetaData().getPrimaryKeys(null, null, "per_bidder")) {
                while (rs.next()) got.add(rs.getString("COLUMN_NAME"));
            }
            eq(got, List.of("bidder"), "getPrimaryKeys");
        });
    }
}
