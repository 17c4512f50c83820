# A native-concurrent migration survives a crash: the server is stopped with
# "immediate" while the worker's CREATE INDEX CONCURRENTLY is under way (an
# INVALID index exists), and after the restart the launcher resumes the
# migration, which drops the half-built index, builds it again and completes.
# A second migration, crashed the same way and then rolled back, leaves
# nothing behind.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('resume');
$node->init;
$node->append_conf('postgresql.conf', slurp_file($ENV{HELIOSMIG_CONF}));
$node->start;

$node->safe_psql('postgres', q{
    CREATE EXTENSION heliosmig;
    SET heliosmig.intercept = off;
    CREATE TABLE big (id int PRIMARY KEY, v text, w int);
    INSERT INTO big SELECT g, md5(g::text), g % 7 FROM generate_series(1, 100000) g;
});

# Starts a build and crashes the server while the build waits for an old
# snapshot (so the INVALID index is certainly there). Returns the migration id.
sub start_and_crash {
    my ($ddl, $index) = @_;
    my $hold = $node->background_psql('postgres');
    $hold->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
    $hold->query_safe('SELECT count(*) FROM big');
    my $id = $node->safe_psql('postgres', "SELECT heliosmig.start('$ddl')");
    ok($node->poll_query_until('postgres', qq{
        SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                        WHERE c.relname = '$index' AND NOT i.indisvalid)}),
       "$index: build under way, INVALID index present");
    $node->stop('immediate');
    eval { $hold->quit };
    $node->start;
    return $id;
}

my $id = start_and_crash('CREATE INDEX big_v ON big (v)', 'big_v');
ok($node->poll_query_until('postgres', qq{
    SELECT state = 'COMPLETED' FROM heliosmig.helios_migrations WHERE migration_id = '$id'}),
   'the launcher resumed the migration after the crash and it completed');
is($node->safe_psql('postgres', q{
    SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
     WHERE c.relname = 'big_v'}), 't', 'the index is valid');
is($node->safe_psql('postgres', qq{
    SELECT count(*) FROM heliosmig.helios_migration_logs
     WHERE migration_id = '$id' AND event = 'resumed'}), '1', 'the resume is logged');
$node->safe_psql('postgres', 'CREATE EXTENSION amcheck');
is($node->safe_psql('postgres', q{SELECT bt_index_check('big_v', true) IS NOT NULL}), 't',
   'amcheck: the rebuilt index holds exactly the table rows');

# Crashed, then rolled back before any worker runs again: the rollback is
# carried out by a worker (DROP INDEX CONCURRENTLY needs one) and nothing is left.
my $id2 = start_and_crash('CREATE UNIQUE INDEX big_id_w ON big (id, w)', 'big_id_w');
$node->safe_psql('postgres', qq{SELECT heliosmig.rollback('$id2')});
ok($node->poll_query_until('postgres', qq{
    SELECT state = 'ROLLED_BACK' FROM heliosmig.helios_migrations WHERE migration_id = '$id2'}),
   'the crashed migration was rolled back');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_index WHERE NOT indisvalid'), '0',
   'no INVALID index is left');
is($node->safe_psql('postgres', q{SELECT to_regclass('big_id_w') IS NULL}), 't',
   'the half-built index is gone');

$node->stop;
done_testing();
