// SPDX-License-Identifier: BSL-1.0
#pragma once
/// \file
/// The intents `effects::schedule` leaves with a transaction attempt, written
/// when the body asks for an answer, before a savepoint, or with COMMIT
/// (DESIGN §7, docs/exactly-once.md "Scheduling without a round trip").

#include <sertx/failure.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sertx::detail {

class effect_buffer;

/// What one `schedule` call knows of its row. `pending` with a buffer: not
/// written yet; `pending` without one: its attempt ended before anyone asked
/// (the row went with COMMIT, or was rolled back), so nothing true can be said.
struct schedule_answer {
    enum class state : unsigned char { pending, inserted, existed } now = state::pending;
    effect_buffer* buffer = nullptr;
};

/// One intent as `schedule` was given it.
struct deferred_effect {
    std::string key;
    std::string_view operation;  // Op::name and the effect tag's name: static strings
    std::string_view effect;
    std::string payload;
    std::int64_t not_before;
    std::shared_ptr<schedule_answer> answer;
};

/// One attempt's buffered intents, on the connection `C` the attempt runs on.
/// `flush` writes them with `c.journal().schedule_effect`, one statement
/// each, and records each answer; `before_commit` hands them to
/// `c.schedule_with_commit` when the adapter sends them with COMMIT
/// (`folded_effect_adapter`), or writes them as `flush` does, and leaves the
/// answers unknown: the caller did not ask while it could.
class effect_buffer {
public:
    /// On a connection without a journal (an adapter without exactly-once
    /// support) nothing can be scheduled, so nothing is ever written.
    template <class C>
    explicit effect_buffer(C& connection) noexcept : connection_(&connection) {
        if constexpr (requires { connection.journal(); }) {
            write_ = &write<C>;
            commit_ = &with_commit<C>;
        }
    }
    effect_buffer(const effect_buffer&) = delete;
    effect_buffer& operator=(const effect_buffer&) = delete;
    ~effect_buffer() { drop(); }

    std::shared_ptr<schedule_answer> add(std::string_view key, std::string_view operation, std::string_view effect,
                                         std::string_view payload, std::int64_t not_before) {
        auto answer = std::make_shared<schedule_answer>();
        answer->buffer = this;
        intents_.push_back({std::string(key), operation, effect, std::string(payload), not_before, answer});
        return answer;
    }

    /// Writes every buffered intent now. An intent whose statement throws
    /// stays buffered, with those after it.
    void flush() {
        std::size_t written = 0;
        try {
            for (; written < intents_.size(); ++written) {
                deferred_effect& e = intents_[written];
                const bool added = write_(connection_, e);
                e.answer->now = added ? schedule_answer::state::inserted : schedule_answer::state::existed;
                e.answer->buffer = nullptr;
            }
        } catch (...) {
            intents_.erase(intents_.begin(), intents_.begin() + static_cast<std::ptrdiff_t>(written));
            throw;
        }
        intents_.clear();
    }

    /// The body returned: the intents go with COMMIT (or just before it).
    void before_commit() {
        for (const deferred_effect& e : intents_) commit_(connection_, e);
        drop();
    }

    /// The attempt, or the savepoint the intents were scheduled in, ended
    /// without them: their answers can no longer be known.
    void drop() noexcept {
        for (deferred_effect& e : intents_) e.answer->buffer = nullptr;
        intents_.clear();
    }

private:
    template <class C>
    static bool write(void* c, const deferred_effect& e) {
        return static_cast<C*>(c)->journal().schedule_effect(e.key, e.operation, e.effect, e.payload, e.not_before);
    }
    template <class C>
    static void with_commit(void* c, const deferred_effect& e) {
        C& connection = *static_cast<C*>(c);
        if constexpr (requires { connection.schedule_with_commit(e.key, e.operation, e.effect, e.payload, e.not_before); })
            connection.schedule_with_commit(e.key, e.operation, e.effect, e.payload, e.not_before);
        else
            connection.journal().schedule_effect(e.key, e.operation, e.effect, e.payload, e.not_before);
    }

    void* connection_;
    bool (*write_)(void*, const deferred_effect&) = nullptr;
    void (*commit_)(void*, const deferred_effect&) = nullptr;
    std::vector<deferred_effect> intents_;
};

/// `schedule`'s answer, asked: written first when it is still buffered.
inline bool answer_of(schedule_answer& a) {
    if (a.now == schedule_answer::state::pending && a.buffer) a.buffer->flush();
    if (a.now == schedule_answer::state::pending)
        throw error("sertx: schedule()'s result was asked after its transaction ended; whether the key was new "
                    "is known only inside the body (convert the result to bool there, which writes the intent at "
                    "once), or afterwards from journal.find(key).");
    return a.now == schedule_answer::state::inserted;
}

}  // namespace sertx::detail
