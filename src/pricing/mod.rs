//! Prices: what each call cost, exactly.
//!
//! # Unit
//!
//! Money is an integer number of **pico-USD** (1e-12 USD) in a `u128` ([`Money`]); rates are pico-USD per
//! token ([`Rates`]), which is the same number as micro-USD per million tokens. Prices are published to at
//! most 1e-6 USD per million tokens (Haiku 5.5's cache write is $0.125 / Mtok), so every rate is a whole
//! number of picos per token and `tokens × rate` is exact. A coarser unit would not be: half of $0.125 / Mtok
//! (a batch 5-minute cache write on Haiku 5.5) is 62.5 nano-USD per token, not a whole number of nano-USD,
//! but exactly 62,500 pico-USD. `u128` holds `u64::MAX` tokens at any `u64` rate, so nothing overflows;
//! everything that could (multipliers, sums) saturates. Floats appear only at the edges
//! ([`Money::as_usd`], [`Rates::from_usd_per_mtok`]).
//!
//! # Rules
//!
//! [`PricedModel::cost`] prices one call from its [`TokenUsage`], whose five
//! billed kinds are disjoint (uncached input, cache read, 5-minute cache write, 1-hour cache write, output;
//! reasoning is part of output and never billed separately). Each kind has its own rate. Then:
//!
//! - **Long context**: when `input + cache_write_5m + cache_write_1h + cache_read` is more than the model's
//!   [`long_context_threshold`](ModelPrice::long_context_threshold) ([`LONG_CONTEXT_THRESHOLD`], 200,000
//!   tokens, unless the price says otherwise: Claude Haiku 5.5's is 100,000) and the model has long-context
//!   rates, *all* of the call's tokens, output included, are billed at the long-context rates. Exactly the
//!   threshold is not long context.
//! - **Fast mode**: `speed = "fast"` multiplies every rate by the model's fast multiplier; on a model without
//!   one the call is billed at standard rates.
//! - **Batch**: `service_tier = "batch"` halves every rate.
//! - **Regional inference**: inference kept in one geography multiplies every rate by 1.1
//!   ([`REGIONAL_MULTIPLIER`]) on Claude Sonnet 4.5 and later: the Messages API's US-only inference
//!   (`inference_geo = "us"`), and the regional endpoints of Amazon Bedrock (an inference profile of one
//!   geography, `us.anthropic.claude-…`, read from the model id; `global.` has no premium) and Google Vertex AI
//!   (a region's endpoint, recorded as `inference_geo` or read from `server.address`).
//!   [`PricedModel::cost_in_geo`] prices a call's geography, [`PricedModel::price_call`] a record's.
//!
//! The four stack multiplicatively. [`PricedModel::price_call`] adds the record's web searches at the
//! book's [`web_search_fee`](PriceBook::web_search_fee) ($10 per 1,000 by default), a flat fee none of the
//! four changes. An unknown model has no price at all ([`PriceBook::resolve`] returns
//! `None`): its calls are *unpriced*, never $0.
//!
//! # Model ids
//!
//! Ids are normalized by [`normalize_model_id`] before lookup, so dated ids (`claude-sonnet-4-20250514`),
//! aliases (`claude-3-5-haiku-latest`, `claude-opus-4-0`), Bedrock ids
//! (`us.anthropic.claude-sonnet-4-5-20250929-v1:0`), Vertex ids (`claude-opus-4-1@20250805`) and
//! `provider:model` ids (`anthropic:claude-sonnet-4-5`) all find the
//! canonical entry (`claude-sonnet-4`, `claude-3-5-haiku`, `claude-opus-4`, `claude-sonnet-4-5`,
//! `claude-opus-4-1`). Canonical ids use Anthropic's name order: version after the family from Claude 4 on
//! (`claude-sonnet-4-5`), before it for Claude 3.x (`claude-3-5-sonnet`).
//!
//! # Overrides
//!
//! [`PriceBook::builtin`] holds the reference table. Prices can be replaced or added in code
//! ([`PriceBook::set`], [`PriceBook::with_price`]) or from a TOML file ([`PriceBook::merge_toml_file`]); the
//! file format is:
//!
//! ```toml
//! web_search_per_1k = 10      # optional: USD per 1,000 web searches (before any table)
//!
//! [models."claude-sonnet-4-5"]
//! input = 3.0                 # USD per million tokens; integers and floats both accepted
//! output = 15.0
//! cache_write_5m = 3.75       # optional: defaults to 1.25x input
//! cache_write_1h = 6.0        # optional: defaults to 2x input
//! cache_read = 0.3            # optional: defaults to 0.1x input
//! fast_multiplier = 6         # optional: whole number, at least 1
//! min_cacheable_tokens = 1024 # optional: the shortest prompt prefix the model caches
//!
//! [models."claude-sonnet-4-5".long_context]   # optional; same rate keys and defaults
//! input = 6.0
//! output = 22.5
//! threshold = 200000          # optional: prompt tokens above which these apply (default: the model's, else 200,000)
//!
//! [models."my-finetune"]
//! input = 1
//! output = 2
//! ```
//!
//! `web_search_per_1k` sets [`PriceBook::web_search_fee`]; as a top-level key it must come before the first
//! table.
//!
//! Each model table replaces that model's whole price (a table without `long_context` removes long-context
//! rates, one without `fast_multiplier` fast mode), except its minimum cacheable prompt, which is not a price:
//! a table without `min_cacheable_tokens` keeps the model's. Defaulted rates round half up to a whole pico-USD
//! per token.

mod file;
mod money;
mod normalize;
mod rates;
mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use money::Money;
pub use normalize::normalize_model_id;
pub(crate) use normalize::{bedrock_geography, vertex_geography};
pub use rates::{CallCost, ModelPrice, PricedModel, REGIONAL_MULTIPLIER, Rates, is_regional_geography};
pub(crate) use rates::{billed_picos, call_geography, geography_stated};

use crate::record::TokenUsage;

/// Prompt size (input + cache writes + cache reads, in tokens) above which a model's long-context rates
/// apply to the whole call.
pub const LONG_CONTEXT_THRESHOLD: u64 = 200_000;

/// The fee of one web search (Anthropic's server-side `web_search` tool): $10 per 1,000 searches, i.e.
/// $0.01 each, on every model ("Web search tool" in Anthropic's docs, as found on 2026-12-04).
pub const DEFAULT_WEB_SEARCH_FEE: Money = Money::from_picos(10_000_000_000);

/// Prices by canonical model id, and the fee of a web search.
#[derive(Debug, Clone)]
pub struct PriceBook {
    models: BTreeMap<Arc<str>, ModelPrice>,
    web_search_fee: Money,
}

impl Default for PriceBook {
    /// The built-in table: [`PriceBook::builtin`].
    fn default() -> Self {
        PriceBook::builtin()
    }
}

impl PriceBook {
    /// The built-in price table, USD per million tokens
    /// (input / output / 5-minute write / 1-hour write / read; long-context rates, over 200,000 prompt tokens
    /// unless noted, in brackets):
    ///
    /// | Model | Rates |
    /// |---|---|
    /// | `claude-3-haiku` | 0.25 / 1.25 / 0.30 / 0.50 / 0.03 |
    /// | `claude-3-opus`, `claude-opus-4`, `claude-opus-4-1` | 15 / 75 / 18.75 / 30 / 1.50 |
    /// | `claude-3-5-haiku` | 0.80 / 4 / 1 / 1.60 / 0.08 |
    /// | `claude-3-5-sonnet`, `claude-3-7-sonnet` | 3 / 15 / 3.75 / 6 / 0.30 |
    /// | `claude-sonnet-4`, `claude-sonnet-4-5` | 3 / 15 / 3.75 / 6 / 0.30 [6 / 22.50 / 7.50 / 12 / 0.60] |
    /// | `claude-sonnet-4-6` | 3 / 15 / 3.75 / 6 / 0.30 |
    /// | `claude-haiku-4-5` | 1 / 5 / 1.25 / 2 / 0.10 |
    /// | `claude-opus-4-5`, `-4-6`, `-4-7`, `-4-8`, `claude-opus-5` | 5 / 25 / 6.25 / 10 / 0.50 |
    /// | `claude-sonnet-5` | 2 / 10 / 2.50 / 4 / 0.20 |
    /// | `claude-opus-5-5` | 4 / 20 / 5 / 8 / 0.20 |
    /// | `claude-sonnet-5-5` | 2 / 10 / 2.50 / 4 / 0.10 |
    /// | `claude-haiku-5-5` | 0.10 / 0.50 / 0.125 / 0.20 / 0.01 [over 100,000: 0.50 / 2.50 / 0.625 / 1 / 0.05] |
    /// | `claude-fable-5`, `claude-mythos-5` | 10 / 50 / 12.50 / 20 / 1 |
    /// | `claude-fable-5-1`, `claude-mythos-5-1` | 10 / 50 / 12.50 / 20 / 0.25 |
    ///
    /// Claude Haiku 5.5's long-context band, over 100,000 prompt tokens (five times every rate), is from its
    /// overview page (<https://platform.claude.com/docs/en/models/haiku-5-5/overview>), checked 2026-12-06.
    /// The Claude Fable and Mythos rows, which the design document's table leaves out, are Anthropic's pricing
    /// page (<https://platform.claude.com/docs/en/about-claude/pricing>) as copies of it dated September 2026
    /// quote it: "Cache read (hit): 0.1x base input price (0.025x on Claude Fable 5.1 and Claude Mythos 5.1 …)";
    /// no long-context surcharge and, as far as found, no fast mode (checked 2026-12-06).
    ///
    /// Fast-mode multipliers (`speed = "fast"`), as found on 2026-11-23:
    ///
    /// - `claude-opus-4-6`: **6x**. Anthropic's fast-mode page
    ///   (<https://platform.claude.com/docs/en/build-with-claude/fast-mode>, Opus 4.6 edition): "priced at 6x
    ///   standard Opus rates across the full context window" ($30 / $150 per Mtok).
    /// - `claude-opus-4-7`: **6x** ($30 / $150, OpenRouter's `anthropic/claude-opus-4.7-fast` listing). Fast
    ///   mode on 4.7 was deprecated 2026-06-25 and removed 2026-07-24 (Claude Code fast-mode docs,
    ///   <https://code.claude.com/docs/en/fast-mode>); kept for calls recorded before then.
    /// - `claude-opus-4-8`, `claude-opus-5`: **2x** ($10 / $50; OpenRouter and Vercel AI Gateway `-fast`
    ///   listings, LiteLLM's Opus 5 announcement). Anthropic's current fast-mode page lists Opus 5.5, Opus 5
    ///   and Opus 4.8 as supported, priced "at a multiplier on standard rates across the full context window";
    ///   fast mode on 4.8 is deprecated (removal 2026-11-30).
    /// - `claude-opus-5-5`: **2x** ($8 / $40; LiteLLM's Opus 5.5 announcement, "about 2x the base price").
    ///
    /// No other model here has fast mode (Anthropic: "not on Sonnet, Haiku, or other models"; Opus 4.5 and
    /// older never had it). Fast mode stacks with the cache, batch and long-context modifiers. Fast-mode
    /// prices are volatile: override them with [`PriceBook::set`] or a price file when they change.
    ///
    /// Minimum cacheable prompts ([`ModelPrice::min_cacheable_tokens`]: a shorter `cache_control` prefix is
    /// sent uncached, without an error; the ledger claims no caching saving under it), as found on 2026-12-03:
    ///
    /// - 4,096: `claude-opus-4-5`, `claude-opus-4-6`, `claude-haiku-4-5`; 2,048: `claude-3-haiku`,
    ///   `claude-3-5-haiku`; 1,024: `claude-sonnet-4-6`, `-4-5`, `-4`, `claude-3-7-sonnet`, `claude-opus-4-1`,
    ///   `claude-opus-4`. Anthropic's prompt-caching page as quoted in anthropic-sdk-python issue #1194
    ///   (2026); one gateway's copy of the table gives 2,048 for Sonnet 4.6.
    /// - 1,024: `claude-3-5-sonnet`, `claude-3-opus` (the same page's earlier edition, as quoted by gateway
    ///   docs).
    /// - 1,024: `claude-opus-4-8` (Anthropic's "What's new in Claude Opus 4.8": "a lower 1,024-token minimum
    ///   cacheable prompt length").
    /// - 512: `claude-opus-5`; 1,024: `claude-sonnet-5` (LiteLLM's prompt-caching page and a 2026 DEV
    ///   Community article agree).
    /// - Not known: `claude-opus-4-7` (2,048 or 4,096 by the sources found), `claude-opus-5-5`,
    ///   `claude-sonnet-5-5`, `claude-haiku-5-5`: the ledger uses
    ///   [`DEFAULT_MIN_CACHEABLE_TOKENS`](crate::ledger::DEFAULT_MIN_CACHEABLE_TOKENS).
    pub fn builtin() -> Self {
        let mut book = PriceBook::empty();
        for (id, price) in table::builtin_prices() {
            book.models.insert(Arc::from(id), price);
        }
        book
    }

    /// A book with no prices: every call is unpriced until prices are set.
    ///
    /// Its web search fee is still [`DEFAULT_WEB_SEARCH_FEE`]: a search is billed on top of a priced call's
    /// tokens, so an unpriced call's searches are never priced either.
    pub fn empty() -> Self {
        PriceBook { models: BTreeMap::new(), web_search_fee: DEFAULT_WEB_SEARCH_FEE }
    }

    /// The fee of one web search ([`DEFAULT_WEB_SEARCH_FEE`] unless set): a call's
    /// [`web_search_requests`](crate::record::CallRecord::web_search_requests) times this is its
    /// [`CallCost::web_search`], added to its total. Flat: batch, fast mode and long context do not change it.
    pub fn web_search_fee(&self) -> Money {
        self.web_search_fee
    }

    /// Sets the fee of one web search (a price file's `web_search_per_1k` sets it too).
    pub fn set_web_search_fee(&mut self, fee: Money) {
        self.web_search_fee = fee;
    }

    /// [`set_web_search_fee`](Self::set_web_search_fee), builder style.
    pub fn with_web_search_fee(mut self, fee: Money) -> Self {
        self.web_search_fee = fee;
        self
    }

    /// Sets (replaces or adds) a model's price. The id is normalized first, so `claude-sonnet-4-5-20250929`
    /// sets `claude-sonnet-4-5`. A price without [`min_cacheable_tokens`](ModelPrice::min_cacheable_tokens)
    /// keeps the model's (not a price: new rates for `claude-haiku-4-5` leave its 4,096 in place), and so does
    /// one with long-context rates and no [`long_context_over`](ModelPrice::long_context_over) (new long-context
    /// rates for `claude-haiku-5-5` keep its 100,000-token line).
    pub fn set(&mut self, model: &str, mut price: ModelPrice) {
        let id = normalize_model_id(model);
        let earlier = self.models.get(id.as_str());
        if price.min_cacheable_tokens.is_none() {
            price.min_cacheable_tokens = earlier.and_then(|p| p.min_cacheable_tokens);
        }
        if price.long_context.is_some() && price.long_context_over.is_none() {
            price.long_context_over = earlier.and_then(|p| p.long_context_over);
        }
        self.models.insert(Arc::from(id), price);
    }

    /// [`set`](Self::set), builder style.
    pub fn with_price(mut self, model: &str, price: ModelPrice) -> Self {
        self.set(model, price);
        self
    }

    /// Merges a TOML price file's text (format in the [module docs](self)) into this book. `origin` names the
    /// text in error messages (usually its path). The file is applied all or nothing: on error the book is
    /// unchanged.
    pub fn merge_toml_str(&mut self, text: &str, origin: &str) -> Result<(), PriceBookError> {
        let file = file::parse_price_file(text, origin)?;
        for (model, price) in file.models {
            self.set(&model, price);
        }
        if let Some(fee) = file.web_search_fee {
            self.web_search_fee = fee;
        }
        Ok(())
    }

    /// Reads and merges a TOML price file, like [`merge_toml_str`](Self::merge_toml_str) with the path as
    /// origin.
    pub fn merge_toml_file(&mut self, path: impl AsRef<Path>) -> Result<(), PriceBookError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| PriceBookError::Io { path: path.to_owned(), source })?;
        self.merge_toml_str(&text, &path.display().to_string())
    }

    /// The priced model for an id in any accepted form, or `None` for an unknown model (its calls are
    /// unpriced).
    pub fn resolve(&self, model_id: &str) -> Option<PricedModel> {
        let canonical = normalize_model_id(model_id);
        self.models
            .get_key_value(canonical.as_str())
            .map(|(id, price)| PricedModel::new(Arc::clone(id), price.clone(), self.web_search_fee))
    }

    /// Prices one call's tokens ([`PricedModel::cost`]); `None` when the model is unknown. A record's web
    /// searches and inference geography are priced by [`PricedModel::price_call`], a call's geography alone by
    /// [`PricedModel::cost_in_geo`].
    pub fn price(
        &self,
        model_id: &str,
        tokens: &TokenUsage,
        service_tier: Option<&str>,
        speed: Option<&str>,
    ) -> Option<CallCost> {
        self.resolve(model_id).map(|model| model.cost(tokens, service_tier, speed))
    }

    /// Every model and its price, sorted by canonical id.
    pub fn models(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        self.models.iter().map(|(id, price)| (&**id, price))
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// True when the book has no models.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// Errors loading prices.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PriceBookError {
    /// A price file could not be read.
    #[error("cannot read price file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A price file is not valid TOML.
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        /// The file (or other origin) of the text.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A price file is valid TOML but a field is wrong, unknown or missing.
    #[error("{origin}:{line}: field `{field}`: {message}")]
    Field {
        /// The file (or other origin) of the text.
        origin: String,
        /// 1-based line of the offending key, value or table.
        line: usize,
        /// Dotted path of the field, e.g. `models.claude-sonnet-4-5.output`.
        field: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A rate given to [`Rates::from_usd_per_mtok`] is not usable.
    #[error("invalid rate `{field}` = {value} USD per million tokens: {reason}")]
    InvalidRate {
        /// Which rate (`input`, `output`, `cache_write_5m`, `cache_write_1h`, `cache_read`).
        field: String,
        /// The value given.
        value: f64,
        /// Why it was rejected.
        reason: &'static str,
    },
}

#[cfg(test)]
mod tests;
