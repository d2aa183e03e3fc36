#pragma once
// A SYNTHETIC customer-service intent data set, generated from hand-written templates (no
// real customer data exists in the package registries this project can use). Ten intents,
// five phrasings each, slots filled from small word lists, random greetings and endings.
//
// The split is by phrasing: intent_part::train draws from the first four templates of each
// intent, intent_part::test only from the fifth, so the test set measures whether a model
// recognises an intent worded in a way it never saw, not whether it memorised sentences.
// Accuracy on it says little about real traffic; it exercises the pipeline end to end.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "../core/rng.hpp"

namespace xgrad::text {

enum class intent_part { train, test };

struct intent_set {
    std::vector<std::string> texts;
    std::vector<std::int64_t> labels;
    std::vector<std::string> classes;  ///< intent names, class k = classes[k]
};

namespace detail {

struct intent_templates {
    std::string_view name;
    std::array<std::string_view, 5> phrasings;  // the last one is held out for the test part
};

// Slots: {item} {order} {amount} {day} {city} {card}
inline constexpr std::array<intent_templates, 10> intent_table{{
    {"check_balance",
     {"what is the balance on my {card} account", "how much money do i have left",
      "show me my current balance please", "can you tell me my {card} balance",
      "i need to know how much is in my account"}},
    {"transfer_money",
     {"send {amount} to my savings account", "i want to transfer {amount} to my brother",
      "move {amount} from checking to savings", "how do i wire {amount} to another bank",
      "please pay {amount} from my account to a friend"}},
    {"lost_card",
     {"i lost my {card} card", "my {card} card was stolen yesterday", "block my card, i cannot find it",
      "someone took my wallet with the {card} card", "my card is missing, please freeze it"}},
    {"reset_password",
     {"i forgot my password", "how do i reset my password", "i cannot log in to my account",
      "the password reset link does not work", "locked out of the app, need a new password"}},
    {"order_status",
     {"where is my order {order}", "has order {order} shipped yet", "track my package {order}",
      "when will the {item} i ordered arrive", "my {item} still has not been delivered"}},
    {"cancel_order",
     {"cancel order {order}", "i want to cancel my {item} order", "please stop the order {order} before it ships",
      "i changed my mind about the {item}, cancel it", "do not send order {order}, i no longer want it"}},
    {"refund",
     {"i want a refund for the {item}", "give me my money back for order {order}",
      "the {item} arrived broken, i want a refund", "how long does a refund take",
      "return the {item} and reimburse me"}},
    {"change_address",
     {"update my address to {city}", "i moved to {city}, change my address",
      "change the delivery address of order {order}", "ship it to my new place in {city} instead",
      "my home address is wrong, it should be in {city}"}},
    {"talk_to_agent",
     {"let me talk to a human", "i want to speak with an agent", "connect me to customer service",
      "is there a real person i can call", "stop the bot and get me a representative"}},
    {"opening_hours",
     {"when do you open on {day}", "what are your opening hours", "are you open on {day}",
      "what time does the store in {city} close", "until when can i visit the branch on {day}"}},
}};

inline constexpr std::array<std::string_view, 8> slot_item{"phone", "laptop", "jacket", "blender",
                                                             "headphones", "book", "chair", "camera"};
inline constexpr std::array<std::string_view, 6> slot_amount{"50 dollars", "$200", "100 euros",
                                                               "1000", "twenty pounds", "$35.50"};
inline constexpr std::array<std::string_view, 7> slot_day{"monday", "tuesday", "saturday", "sunday",
                                                            "friday", "christmas eve", "the weekend"};
inline constexpr std::array<std::string_view, 7> slot_city{"boston", "berlin", "madrid", "tokyo",
                                                             "lyon", "chicago", "new york"};
inline constexpr std::array<std::string_view, 4> slot_card{"credit", "debit", "visa", "savings"};
inline constexpr std::array<std::string_view, 6> greeting{"", "", "hi, ", "hello ", "hey there, ", "good morning, "};
inline constexpr std::array<std::string_view, 6> ending{"", "", "?", " please", ", thanks", "!"};

template <std::size_t N>
std::string_view pick(const std::array<std::string_view, N>& a, rng& gen) {
    return a[gen.below(N)];
}

inline std::string fill_template(std::string_view t, rng& gen) {
    std::string out(pick(greeting, gen));
    for (std::size_t i = 0; i < t.size(); ++i) {
        if (t[i] != '{') {
            out.push_back(t[i]);
            continue;
        }
        const std::size_t close = t.find('}', i);
        const std::string_view slot = t.substr(i + 1, close - i - 1);
        if (slot == "item") out += pick(slot_item, gen);
        else if (slot == "amount") out += pick(slot_amount, gen);
        else if (slot == "day") out += pick(slot_day, gen);
        else if (slot == "city") out += pick(slot_city, gen);
        else if (slot == "card") out += pick(slot_card, gen);
        else out += "#" + std::to_string(10000 + gen.below(90000));  // order
        i = close;
    }
    out += pick(ending, gen);
    if (gen.below(4) == 0 && !out.empty()) out[0] = static_cast<char>(out[0] >= 'a' && out[0] <= 'z' ? out[0] - 32 : out[0]);
    return out;
}

}  // namespace detail

/// `per_intent` examples of each of the 10 intents, interleaved (sample i has intent i % 10),
/// reproducible from `seed`. value_error for per_intent 0.
inline intent_set synthetic_intents(std::size_t per_intent, intent_part part, std::uint64_t seed = 0) {
    if (per_intent == 0) throw value_error("synthetic_intents: per_intent must be positive");
    intent_set s;
    for (const auto& t : detail::intent_table) s.classes.emplace_back(t.name);
    rng gen(seed * 2 + (part == intent_part::test ? 1 : 0));
    for (std::size_t k = 0; k < per_intent; ++k)
        for (std::size_t c = 0; c < detail::intent_table.size(); ++c) {
            const auto& ph = detail::intent_table[c].phrasings;
            const std::size_t which = part == intent_part::test ? ph.size() - 1 : gen.below(ph.size() - 1);
            s.texts.push_back(detail::fill_template(ph[which], gen));
            s.labels.push_back(static_cast<std::int64_t>(c));
        }
    return s;
}

}  // namespace xgrad::text
