# An online rewrite survives a crash during COPYING.
#
# Case 1: the migration (small chunks, low throttle_io, and a transform that
# stops the copy at two thirds of the keys until the crash) is copying, writes
# have been committed (balances, key changes out of and into the copied range,
# a big TOASTed value, deletes, inserts beyond both ends) and one transaction
# is still open, when the server is stopped with "immediate". After the
# restart the launcher resumes the migration; more writes arrive while it
# runs; it completes, and the table equals a mirror table fed by a trigger
# installed before the migration (the open transaction is in neither).
#
# Case 2: crashed the same way, then rolled back: ROLLED_BACK, and nothing is
# left (no ghost, no slot, no retained storage); the table is exactly what it
# was, same storage, same column type.
#
# Knob: HELIOSMIG_TAP_ROWS (default 60000) for case 1; case 2 uses half.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time usleep);

my $rows  = $ENV{HELIOSMIG_TAP_ROWS} // 60000;
my $nc    = 2;
my $slots = int($rows / (2 * $nc));    # pgbench writes keys 1 .. rows/2 (and moves them)

my $node = PostgreSQL::Test::Cluster->new('rewrite_crash');
$node->init;
$node->append_conf('postgresql.conf', slurp_file($ENV{HELIOSMIG_CONF}));
my $describe = `postgres --describe-config 2>/dev/null`;
$node->append_conf('postgresql.conf',
    "output_plugin_libraries = 'pgoutput, test_decoding, heliosmig'\n")
  if $describe =~ /^output_plugin_libraries\t/m;
$node->append_conf('postgresql.conf', "log_line_prefix = '%m [%p] %b '\n");
$node->start;
my $tmp = PostgreSQL::Test::Utils::tempdir;

# A table like the one of t/002, with an independent mirror of its writes.
sub make_table
{
    my ($t, $n, $with_mirror) = @_;
    my $mirror = $with_mirror ? qq{
        CREATE TABLE ${t}_mirror (id bigint PRIMARY KEY, v bigint, pad text);
        INSERT INTO ${t}_mirror SELECT * FROM $t;
        CREATE FUNCTION ${t}_mirror_fn() RETURNS trigger LANGUAGE plpgsql AS \$\$
        DECLARE n bigint;
        BEGIN
            IF TG_OP = 'INSERT' THEN
                EXECUTE 'INSERT INTO ${t}_mirror VALUES (\$1.id, \$1.v, \$1.pad)' USING NEW;
            ELSIF TG_OP = 'UPDATE' THEN
                EXECUTE 'UPDATE ${t}_mirror SET id = \$1.id, v = \$1.v, pad = \$1.pad WHERE id = \$2.id'
                    USING NEW, OLD;
            ELSE
                EXECUTE 'DELETE FROM ${t}_mirror WHERE id = \$1.id' USING OLD;
            END IF;
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n <> 1 THEN
                RAISE EXCEPTION 'mirror out of step: % touched % rows', TG_OP, n;
            END IF;
            RETURN NULL;
        END;
        \$\$;
        CREATE TRIGGER ${t}_mirror AFTER INSERT OR UPDATE OR DELETE ON $t
            FOR EACH ROW EXECUTE FUNCTION ${t}_mirror_fn();
    } : '';
    $node->safe_psql('postgres', qq{
        SET heliosmig.intercept = off;
        CREATE TABLE $t (id int PRIMARY KEY, v int NOT NULL, pad text);
        INSERT INTO $t
        SELECT g, g % 1000,
               CASE WHEN g % 50 = 0
                    THEN (SELECT string_agg(md5(x::text || '/' || g), '') FROM generate_series(1, 100) x)
                    ELSE md5(g::text) END
          FROM generate_series(1, $n) g;
        CREATE INDEX ${t}_v ON $t (v);
        $mirror
        VACUUM ANALYZE $t;
    });
}

sub state_of
{
    my ($id) = @_;
    return $node->safe_psql('postgres',
        "SELECT state || ' ' || rows_copied FROM heliosmig.helios_migrations WHERE migration_id = '$id'");
}

# Polls until the migration is in a final state; returns it.
sub wait_final
{
    my ($id, $timeout) = @_;
    my $deadline = time + $timeout;
    my $state;
    while (time < $deadline)
    {
        ($state) = split / /, state_of($id);
        return $state if $state =~ /^(COMPLETED|FAILED|ROLLED_BACK)$/;
        usleep(200_000);
    }
    diag "migration $id still $state after $timeout s";
    return $state;
}

# Starts a slow migration and waits until it is copying. The copy cannot
# finish before the crash: its transform, crash_gate(), makes the worker wait
# at key $gate for advisory lock 7700, which a session holds until the crash
# ends it (after the restart nothing holds it).
sub start_copying
{
    my ($t, $chunk, $throttle, $gate) = @_;
    my $id = $node->safe_psql('postgres', qq{
        SELECT heliosmig.start('ALTER TABLE $t ALTER COLUMN v TYPE bigint USING crash_gate(id, v, $gate)',
                               chunk_size => $chunk, throttle_io => $throttle)});
    ok($node->poll_query_until('postgres', qq{
        SELECT state = 'COPYING' AND rows_copied > 0 FROM heliosmig.helios_migrations
         WHERE migration_id = '$id'}), "$t: the migration is copying");
    return $id;
}

# Single-row writes by $nc pgbench clients for $secs seconds; each client
# owns its keys (home = j * nc + client + 1; moves to -home and home + 10^7).
my $script = "$tmp/writes.sql";
{
    open(my $fh, '>', $script) or die;
    print $fh <<'EOS';
\set j random(0, :slots - 1)
\set home :j * :nc + :client_id + 1
\set high :home + 10000000
\set low -1 * :home
\set op random(1, 10)
\set r random(1, 1000000)
BEGIN;
UPDATE crash_t SET v = v + :r WHERE :op <= 4 AND id IN (:home, :high, :low);
UPDATE crash_t SET id = CASE id WHEN :home THEN :high WHEN :high THEN :low ELSE :home END
 WHERE :op IN (5, 6) AND id IN (:home, :high, :low);
DELETE FROM crash_t WHERE :op = 7 AND id IN (:home, :high, :low);
INSERT INTO crash_t SELECT :home, :r, 'ins ' || :r
 WHERE :op >= 8 AND NOT EXISTS (SELECT 1 FROM crash_t WHERE id IN (:home, :high, :low));
END;
EOS
    close $fh;
}
sub write_for
{
    my ($secs, $what) = @_;
    my ($out, $err) = ('', '');
    IPC::Run::run(['pgbench', '-n', '-c', $nc, '-j', 1, '-T', $secs,
        '-h', $node->host, '-p', $node->port,
        '-D', "nc=$nc", '-D', "slots=$slots", '-f', $script, 'postgres'], '>', \$out, '2>', \$err);
    my ($done)   = $out =~ /number of transactions actually processed: (\d+)/;
    my ($failed) = $out =~ /number of failed transactions: (\d+)/;
    ok(defined $done && $done > 0 && !$failed && $err !~ /error|abort/i,
        "$what: pgbench wrote " . ($done // 0) . ' transactions without a failure')
      or diag "$out\n$err";
}

sub compare_with_mirror
{
    my ($t, $what) = @_;
    my $cmp = $node->safe_psql('postgres', qq{
        SELECT (SELECT count(*) FROM (SELECT * FROM $t EXCEPT ALL SELECT * FROM ${t}_mirror) x)
         || ' ' || (SELECT count(*) FROM (SELECT * FROM ${t}_mirror EXCEPT ALL SELECT * FROM $t) y)});
    is($cmp, '0 0', "$what: the table equals its mirror (rows only in table, only in mirror)");
    diag $node->safe_psql('postgres', qq{
        (SELECT 'table only', id, v, md5(pad) FROM (SELECT * FROM $t EXCEPT ALL SELECT * FROM ${t}_mirror) x ORDER BY id LIMIT 10)
        UNION ALL
        (SELECT 'mirror only', id, v, md5(pad) FROM (SELECT * FROM ${t}_mirror EXCEPT ALL SELECT * FROM $t) y ORDER BY id LIMIT 10)})
      if $cmp ne '0 0';
}

sub no_leftovers
{
    my ($id, $oid, $what) = @_;
    (my $slot = "heliosmig_$id") =~ s/-//g;
    is($node->safe_psql('postgres', qq{
        SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot' OR slot_name LIKE 'heliosmig%'}),
        '0', "$what: no replication slot left ($slot)");
    is($node->safe_psql('postgres', qq{SELECT to_regclass('heliosmig.ghost_$oid') IS NULL}), 't',
        "$what: no ghost table left");
    is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_index WHERE NOT indisvalid'), '0',
        "$what: no invalid index");
}

$node->safe_psql('postgres', q{
    CREATE EXTENSION heliosmig;
    CREATE EXTENSION amcheck;
    CREATE FUNCTION crash_gate(id int, v int, gate int) RETURNS bigint LANGUAGE plpgsql AS $$
    BEGIN
        IF id = gate AND (SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid())
                         = 'heliosmig migration' THEN
            PERFORM pg_advisory_xact_lock_shared(7700);
        END IF;
        RETURN v;
    END;
    $$;
});
# Holds the gate until the crash.
sub hold_gate
{
    my $h = $node->background_psql('postgres');
    $h->query_safe('SELECT pg_advisory_lock(7700)');
    return $h;
}

# ------------------------------------------------------------------ case 1
make_table('crash_t', $rows, 1);
my $oid = $node->safe_psql('postgres', "SELECT 'crash_t'::regclass::oid");
my $gate = hold_gate();
my $id   = start_copying('crash_t', 200, 10, int($rows * 2 / 3));

# Committed writes while it copies: keys in the copied range and beyond it, a
# row moved from the copied range above the end, one moved from the range not
# yet copied into the copied one keeping its big TOASTed value, a new big
# value, inserts below the minimum and above the maximum, deletes.
my $hi = $rows;
$node->safe_psql('postgres', qq{
    UPDATE crash_t SET v = v + 100000 WHERE id IN (1, 2, 3, $hi - 1, $hi);
    DELETE FROM crash_t WHERE id IN (4, 25, $hi - 2);
    UPDATE crash_t SET id = 25 WHERE id = $hi - 50;                 -- big pad, not copied -> copied
    UPDATE crash_t SET id = $hi + 100 WHERE id = 5;                 -- copied -> above the end
    UPDATE crash_t SET pad = (SELECT string_agg(md5(x::text || 'new'), '') FROM generate_series(1, 100) x)
     WHERE id = $hi - 100;
    INSERT INTO crash_t VALUES (-70000000, 7, 'below'), ($hi + 7, 7, 'above'), (4, 44, 'again');
});
write_for(2, 'before the crash');
my ($state_at_crash, $copied_at_crash) = split / /, state_of($id);
diag "crashing with $copied_at_crash rows copied";
is($state_at_crash, 'COPYING', 'still copying when the server crashes');
# A transaction still open at the crash: neither in the table nor the mirror.
my $open = $node->background_psql('postgres');
$open->query_safe('BEGIN');
$open->query_safe("INSERT INTO crash_t VALUES ($hi + 999, 999, 'uncommitted')");
$open->query_safe('UPDATE crash_t SET v = -1 WHERE id = 3');
$node->stop('immediate');
eval { $open->quit };
eval { $gate->quit };
$node->start;

ok($node->poll_query_until('postgres', qq{
    SELECT count(*) > 0 FROM heliosmig.helios_migration_logs WHERE migration_id = '$id' AND event = 'resumed'}),
    'the launcher resumed the migration after the restart');
my ($state_after) = split / /, state_of($id);
diag "state after the resume: $state_after";
write_for(2, 'after the restart');
$node->safe_psql('postgres', qq{
    UPDATE crash_t SET v = v + 1 WHERE id IN (6, $hi - 3);
    DELETE FROM crash_t WHERE id = 8;
    INSERT INTO crash_t VALUES ($hi + 8, 8, 'after the restart');
});
is(wait_final($id, 180), 'COMPLETED', 'the resumed migration completed');
compare_with_mirror('crash_t', 'case 1');
is($node->safe_psql('postgres', qq{SELECT count(*) FROM crash_t WHERE id = $hi + 999 OR v = -1}), '0',
    'the transaction open at the crash left nothing');
is($node->safe_psql('postgres', "SELECT 'crash_t'::regclass::oid"), $oid, 'the table kept its OID');
is($node->safe_psql('postgres', qq{
    SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $oid AND attname = 'v'}),
    'bigint', 'v is bigint');
is($node->safe_psql('postgres', qq{
    SELECT count(*) FROM (SELECT bt_index_check(indexrelid, true) FROM pg_index
                           WHERE indrelid IN ($oid, (SELECT reltoastrelid FROM pg_class WHERE oid = $oid))) c}),
    '3', 'amcheck (heapallindexed) passes on every index');
no_leftovers($id, $oid, 'case 1');
is($node->safe_psql('postgres', qq{
    SELECT count(*) FROM pg_class WHERE relnamespace = 'heliosmig'::regnamespace
       AND relkind = 'r' AND relname IN ('old_$oid', 'old_${oid}_' || left('$id', 8))}), '1',
    'case 1: the old storage is retained in schema heliosmig');
diag 'case 1 history: ' . $node->safe_psql('postgres', qq{
    SELECT string_agg(coalesce(to_state, event), ' > ' ORDER BY log_id) FROM heliosmig.helios_migration_logs
     WHERE migration_id = '$id'});

# ------------------------------------------------------------------ case 2
make_table('crash_r', int($rows / 2), 0);
$node->safe_psql('postgres', 'CREATE TABLE crash_r_before AS SELECT * FROM crash_r');
my $oid2 = $node->safe_psql('postgres', "SELECT 'crash_r'::regclass::oid");
my $files = $node->safe_psql('postgres', qq{
    SELECT string_agg(relname || '=' || relfilenode, ',' ORDER BY relname) FROM pg_class
     WHERE oid IN ($oid2, (SELECT reltoastrelid FROM pg_class WHERE oid = $oid2))
        OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = $oid2)});
$gate = hold_gate();
my $id2 = start_copying('crash_r', 200, 10, int($rows / 3));
$node->stop('immediate');
eval { $gate->quit };
$node->start;
my $res = $node->safe_psql('postgres', "SELECT heliosmig.rollback('$id2')");
like($res, qr/^(ROLLING_BACK|ROLLED_BACK)$/, "rollback() accepted after the crash ($res)");
is(wait_final($id2, 120), 'ROLLED_BACK', 'the crashed migration was rolled back');
no_leftovers($id2, $oid2, 'case 2');
is($node->safe_psql('postgres', qq{
    SELECT count(*) FROM pg_class WHERE relnamespace = 'heliosmig'::regnamespace AND relname LIKE '%$oid2%'}),
    '0', 'case 2: nothing named after the table in schema heliosmig');
is($node->safe_psql('postgres', qq{
    SELECT (SELECT count(*) FROM (SELECT * FROM crash_r EXCEPT ALL SELECT * FROM crash_r_before) x)
         + (SELECT count(*) FROM (SELECT * FROM crash_r_before EXCEPT ALL SELECT * FROM crash_r) y)}),
    '0', 'case 2: the table holds exactly what it held');
is($node->safe_psql('postgres', qq{
    SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $oid2 AND attname = 'v'}),
    'integer', 'case 2: v is still integer');
is($node->safe_psql('postgres', qq{
    SELECT string_agg(relname || '=' || relfilenode, ',' ORDER BY relname) FROM pg_class
     WHERE oid IN ($oid2, (SELECT reltoastrelid FROM pg_class WHERE oid = $oid2))
        OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = $oid2)}),
    $files, 'case 2: the table, its TOAST and its indexes keep their storage');
is($node->safe_psql('postgres', qq{
    SELECT count(*) FROM (SELECT bt_index_check(indexrelid, true) FROM pg_index WHERE indrelid = $oid2) c}),
    '2', 'case 2: amcheck passes');
is($node->safe_psql('postgres', q{
    SELECT count(*) FROM heliosmig.helios_migrations WHERE state NOT IN ('COMPLETED', 'FAILED', 'ROLLED_BACK')}),
    '0', 'no migration left active');

$node->stop;
done_testing();
