// Spec spellings -> PostgreSQL syntax (see include/heliosmig/plan/dialect.hpp).
#include "heliosmig/plan/dialect.hpp"
#include "heliosmig/pg/error.hpp"
#include "heliosmig/pg/subtransaction.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <string_view>
#include <vector>

extern "C" {
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "parser/gram.h"
}

namespace heliosmig::plan {

namespace {

struct Token {
    int code;
    int location;
    std::string keyword; // lower-case keyword, empty if not a keyword
    std::string text;    // identifier or literal value
};

struct RawToken {
    int code;
    int location;
    const char* keyword;
    const char* str;
    int ival;
};

struct RawTokens {
    RawToken* items;
    int count;
};

// Runs PostgreSQL's core scanner over the text; lexical errors (an
// unterminated quote, say) are reported by the scanner itself.
RawTokens scan_raw(const char* text) {
    RawTokens tokens{nullptr, 0};
    pg::call([&] {
        core_yy_extra_type extra;
        core_yyscan_t scanner = scanner_init(text, &extra, &ScanKeywords, ScanKeywordTokens);
        int capacity = 64;
        tokens.items = static_cast<RawToken*>(palloc(sizeof(RawToken) * capacity));
        for (;;) {
            core_YYSTYPE value;
            YYLTYPE location;
            int code = core_yylex(&value, &location, scanner);
            if (code == 0)
                break;
            if (tokens.count == capacity) {
                capacity *= 2;
                tokens.items =
                    static_cast<RawToken*>(repalloc(tokens.items, sizeof(RawToken) * capacity));
            }
            RawToken& t = tokens.items[tokens.count++];
            t.code = code;
            t.location = location;
            t.keyword = nullptr;
            t.str = nullptr;
            t.ival = 0;
            if (code == IDENT || code == SCONST || code == FCONST || code == BCONST ||
                code == XCONST)
                t.str = value.str;
            else if (code == ICONST)
                t.ival = value.ival;
            else if (code >= 256)
                t.keyword = value.keyword;
        }
        scanner_finish(scanner);
    });
    return tokens;
}

std::vector<Token> scan(const std::string& text) {
    RawTokens raw = scan_raw(text.c_str());
    std::vector<Token> tokens;
    tokens.reserve(raw.count);
    for (int i = 0; i < raw.count; i++) {
        const RawToken& r = raw.items[i];
        Token t{r.code, r.location, r.keyword ? r.keyword : "", {}};
        if (r.str)
            t.text = r.str;
        else if (r.code == ICONST)
            t.text = std::to_string(r.ival);
        else if (r.keyword)
            t.text = r.keyword;
        tokens.push_back(std::move(t));
    }
    return tokens;
}

bool is_keyword(const Token& t, std::string_view kw) {
    return t.keyword == kw;
}

bool is_char(const Token& t, char c) {
    return t.code == static_cast<unsigned char>(c);
}

struct Edit {
    int begin;
    int end;
    std::string replacement;
};

std::string apply_edits(const std::string& text, std::vector<Edit> edits) {
    std::sort(edits.begin(), edits.end(),
              [](const Edit& a, const Edit& b) { return a.begin > b.begin; });
    std::string out = text;
    for (const Edit& e : edits)
        out.replace(e.begin, e.end - e.begin, e.replacement);
    return out;
}

// Where token i's text ends: the next token's start (or the end of text).
int end_of(const std::vector<Token>& tokens, size_t i, const std::string& text) {
    return i + 1 < tokens.size() ? tokens[i + 1].location : static_cast<int>(text.size());
}

[[noreturn]] void bad_with_clause(std::string_view why) {
    pg::raise(ERRCODE_SYNTAX_ERROR, fmt::format("invalid migration WITH clause: {}", why), {},
              "Write WITH (MIGRATION_MODE = 'ONLINE', CHUNK_SIZE = 10000, THROTTLE_IO = 50, "
              "ENABLE_SHADOW_TRAFFIC = true) at the end of the statement.");
}

// Parses the options between tokens[open] == '(' and tokens[close] == ')'.
OptionList parse_with_options(const std::vector<Token>& tokens, size_t open, size_t close) {
    OptionList options;
    size_t i = open + 1;
    while (i < close) {
        const Token& key = tokens[i];
        if (key.code != IDENT && key.keyword.empty())
            bad_with_clause("expected an option name");
        if (i + 2 >= close + 1 || !is_char(tokens[i + 1], '='))
            bad_with_clause(fmt::format("expected = after {}", key.text));
        size_t v = i + 2;
        std::string value;
        if (v < close && is_char(tokens[v], '-') && v + 1 < close) {
            value = "-" + tokens[v + 1].text;
            v++;
        } else if (v < close) {
            value = tokens[v].text;
        } else {
            bad_with_clause(fmt::format("expected a value for {}", key.text));
        }
        options.emplace_back(key.text, value);
        i = v + 1;
        if (i < close) {
            if (!is_char(tokens[i], ','))
                bad_with_clause("expected , between options");
            i++;
        }
    }
    return options;
}

// Whether the WITH list at tokens[with_at] names only migration options
// (then it is the spec's, even where PostgreSQL would read index options).
bool only_migration_options(const std::vector<Token>& tokens, size_t with_at, size_t end) {
    for (size_t i = with_at + 2; i + 1 < end; i++) {
        if (!is_char(tokens[i + 1], '='))
            continue;
        if (!is_migration_option(tokens[i].text))
            return false;
    }
    return true;
}

// Whether PostgreSQL's grammar accepts the text. Parsing has no side
// effects, but its errors are caught in a subtransaction all the same.
bool parses(const std::string& sql) {
    const char* text = sql.c_str();
    try {
        pg::in_discarded_subtransaction(
            [&] { pg::call([&] { (void)raw_parser(text, RAW_PARSE_DEFAULT); }); });
        return true;
    } catch (const pg::Error&) {
        return false;
    }
}

} // namespace

DialectResult normalize_dialect(const std::string& ddl) {
    DialectResult result;
    std::vector<Token> tokens = scan(ddl);

    // Only ALTER TABLE has spec spellings; everything else is PostgreSQL's own.
    if (tokens.size() < 2 || !is_keyword(tokens[0], "alter") || !is_keyword(tokens[1], "table")) {
        result.sql = ddl;
        result.display = ddl;
        return result;
    }

    std::vector<Edit> edits;
    size_t last = tokens.size() - 1;
    size_t end = tokens.size(); // one past the statement's last token
    if (is_char(tokens[last], ';'))
        end = last;

    // A trailing WITH ( ... ): the last top-level WITH followed by a
    // parenthesised list that closes the statement. It is the spec's migration
    // options if it names only those, or if PostgreSQL's grammar has no place
    // for it; otherwise it is PostgreSQL's own (ADD CONSTRAINT ... UNIQUE (c)
    // WITH (fillfactor = 70)).
    size_t with_at = 0; // index of the WITH token, 0 if none
    if (end >= 3 && is_char(tokens[end - 1], ')')) {
        int depth = 0;
        for (size_t i = end; i-- > 2;) {
            if (is_char(tokens[i], ')'))
                depth++;
            else if (is_char(tokens[i], '('))
                depth--;
            if (depth == 0 && is_char(tokens[i], '(')) {
                if (is_keyword(tokens[i - 1], "with"))
                    with_at = i - 1;
                break;
            }
        }
    }
    const size_t statement_end = end;
    if (with_at != 0)
        end = with_at;

    for (size_t i = 2; i < end; i++) {
        const Token& t = tokens[i];
        // MODIFY [COLUMN] c T  ->  ALTER COLUMN c TYPE T
        if (t.code == IDENT && t.text == "modify" && i + 1 < end) {
            size_t column = is_keyword(tokens[i + 1], "column") ? i + 2 : i + 1;
            if (column + 1 >= end)
                continue;
            edits.push_back({t.location, tokens[column].location, "ALTER COLUMN "});
            edits.push_back({end_of(tokens, column, ddl), end_of(tokens, column, ddl), " TYPE "});
            i = column;
            continue;
        }
        if (is_keyword(t, "drop") && i + 2 < end + 1) {
            // DROP PRIMARY KEY  ->  DROP CONSTRAINT <placeholder>
            if (i + 2 < end && is_keyword(tokens[i + 1], "primary") &&
                is_keyword(tokens[i + 2], "key")) {
                edits.push_back({tokens[i + 1].location, end_of(tokens, i + 2, ddl),
                                 fmt::format("CONSTRAINT \"{}\" ", kPrimaryKeyPlaceholder)});
                i += 2;
                continue;
            }
            // DROP FOREIGN KEY fk  ->  DROP CONSTRAINT fk
            if (i + 3 < end && is_keyword(tokens[i + 1], "foreign") &&
                is_keyword(tokens[i + 2], "key")) {
                edits.push_back({tokens[i + 1].location, tokens[i + 3].location, "CONSTRAINT "});
                i += 2;
                continue;
            }
        }
    }

    result.display = ddl;
    if (with_at != 0 && (only_migration_options(tokens, with_at, statement_end) ||
                         !parses(apply_edits(ddl, edits)))) {
        result.options = parse_with_options(tokens, with_at + 1, statement_end - 1);
        edits.push_back({tokens[with_at].location, static_cast<int>(ddl.size()), ""});
        result.display = ddl.substr(0, tokens[with_at].location);
    }
    result.sql = apply_edits(ddl, std::move(edits));
    while (!result.sql.empty() && std::isspace(static_cast<unsigned char>(result.sql.back())))
        result.sql.pop_back();
    return result;
}

} // namespace heliosmig::plan
