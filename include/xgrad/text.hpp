#pragma once
// Text data: tokenizer, vocabulary, text_dataset (padded token ids for data::loader, with
// bucketing by length), CSV/TSV text columns, the synthetic intent set, and the ARFF and
// bzip2 readers text corpora come in.
#include "io/arff.hpp"
#include "io/bz2.hpp"

#include "text/intents.hpp"
#include "text/text_dataset.hpp"
#include "text/tokenizer.hpp"
#include "text/vocabulary.hpp"
