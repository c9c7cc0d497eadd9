// SPDX-License-Identifier: BSL-1.0
#pragma once
// The command line, parsed by hand: a command is one or two words, then its
// operands and options ("--name value" or "--flag"). Small on purpose: a CLI
// library would be the demo's largest dependency and teach nothing about sertx.

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ledger {

/// Something the user can fix: a bad argument, a database that cannot be
/// reached, a ledger in a state the command refuses. Exit code 2.
class usage_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct option_spec {
    std::string_view name;   ///< without the dashes
    std::string_view value;  ///< what the value is called in the help; empty for a flag
    std::string_view help;
};

struct command_spec {
    std::string_view words;     ///< "effects resolve"
    std::string_view operands;  ///< "KEY done|failed", shown in the help
    std::size_t operand_count;
    std::string_view summary;
    std::vector<option_spec> options;
};

inline std::string help_text(const command_spec& c) {
    std::string out = "usage: sertx-ledger " + std::string(c.words);
    if (!c.operands.empty()) out += " " + std::string(c.operands);
    out += " [options]\n\n" + std::string(c.summary) + "\n\noptions:\n";
    for (const auto& o : c.options) {
        std::string left = "  --" + std::string(o.name);
        if (!o.value.empty()) left += " " + std::string(o.value);
        left.resize(std::max<std::size_t>(left.size() + 2, 26), ' ');
        out += left + std::string(o.help) + "\n";
    }
    return out + "  --help                  this text\n";
}

/// The operands and options of one command, checked against its spec.
class arguments {
public:
    arguments(const command_spec& spec, std::span<char* const> args) : spec_(&spec) {
        for (std::size_t i = 0; i < args.size(); ++i) {
            const std::string_view a = args[i];
            if (a == "--help" || a == "-h") {
                help_ = true;
                continue;
            }
            if (!a.starts_with("--")) {
                operands_.emplace_back(a);
                continue;
            }
            const std::string_view name = a.substr(2);
            const option_spec* o = find(name);
            if (!o) fail("unknown option '" + std::string(a) + "'");
            if (values_.contains(std::string(name))) fail("--" + std::string(name) + " is given twice");
            if (o->value.empty()) {
                values_[std::string(name)] = "";
            } else {
                if (i + 1 == args.size())
                    fail("--" + std::string(name) + " needs a value (" + std::string(o->value) + ")");
                values_[std::string(name)] = args[++i];
            }
        }
        if (!help_ && operands_.size() != spec.operand_count) {
            if (operands_.size() > spec.operand_count)
                fail("unexpected argument '" + operands_[spec.operand_count] + "'");
            fail("missing " + std::string(spec.operands));
        }
    }

    bool help() const noexcept { return help_; }
    const std::string& operand(std::size_t i) const { return operands_.at(i); }
    bool flag(std::string_view name) const { return values_.contains(std::string(name)); }

    std::optional<std::string> value(std::string_view name) const {
        auto it = values_.find(std::string(name));
        if (it == values_.end()) return std::nullopt;
        return it->second;
    }

    /// A whole number from `low` to `high`, or `fallback` when not given.
    long long number(std::string_view name, long long low, long long high, long long fallback) const {
        const auto v = value(name);
        if (!v) return fallback;
        errno = 0;
        char* end = nullptr;
        const long long n = std::strtoll(v->c_str(), &end, 10);
        if (v->empty() || *end != '\0' || errno == ERANGE || n < low || n > high)
            fail("--" + std::string(name) + " needs a whole number from " + std::to_string(low) + " to " +
                 std::to_string(high) + ", not '" + *v + "'");
        return n;
    }

    [[noreturn]] void fail(const std::string& why) const {
        throw usage_error(why + "; see 'sertx-ledger " + std::string(spec_->words) + " --help'");
    }

private:
    const option_spec* find(std::string_view name) const {
        for (const auto& o : spec_->options)
            if (o.name == name) return &o;
        return nullptr;
    }

    const command_spec* spec_;
    bool help_ = false;
    std::vector<std::string> operands_;
    std::map<std::string, std::string> values_;
};

}  // namespace ledger
