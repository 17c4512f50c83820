// Catalog access as its owner (see include/heliosmig/catalog/writer.hpp).
#include "heliosmig/catalog/writer.hpp"
#include "heliosmig/pg/error.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

namespace heliosmig::catalog {

namespace {

// The owner of heliosmig's catalog: writes run as this role.
Oid catalog_owner() {
    return pg::call([] {
        Oid nsp = get_namespace_oid("heliosmig", false);
        Oid rel = get_relname_relid("helios_migrations", nsp);
        if (!OidIsValid(rel))
            elog(ERROR, "heliosmig catalog is missing: run CREATE EXTENSION heliosmig");
        HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
        if (!HeapTupleIsValid(tuple))
            elog(ERROR, "cache lookup failed for relation %u", rel);
        Oid owner = ((Form_pg_class)GETSTRUCT(tuple))->relowner;
        ReleaseSysCache(tuple);
        return owner;
    });
}

} // namespace

CatalogWriter::CatalogWriter() : as_owner_(catalog_owner()) {}

} // namespace heliosmig::catalog
