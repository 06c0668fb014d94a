//! Hand-computed figures for the price book, and the price-file format.

use super::*;

/// Picos from micro-USD (tokens × USD-per-Mtok sums are in micro-USD).
const fn micro_usd(n: u128) -> Money {
    Money::from_picos(n * 1_000_000)
}

fn usage(input: u64, cache_read: u64, w5: u64, w1: u64, output: u64) -> TokenUsage {
    TokenUsage { input, cache_read, cache_write_5m: w5, cache_write_1h: w1, output, reasoning: 0 }
}

/// One call with all five kinds: 1,000 input, 2,000 read, 3,000 5m write, 4,000 1h write, 5,000 output.
fn mixed() -> TokenUsage {
    usage(1_000, 2_000, 3_000, 4_000, 5_000)
}

fn cost(model: &str, tokens: &TokenUsage, tier: Option<&str>, speed: Option<&str>) -> CallCost {
    PriceBook::builtin().price(model, tokens, tier, speed).unwrap_or_else(|| panic!("{model} should be priced"))
}

#[test]
fn every_family_hand_computed() {
    // Σ tokens × USD/Mtok = micro-USD:
    let cases: [(&str, u128); 24] = [
        // 1000×.25 + 2000×.03 + 3000×.30 + 4000×.50 + 5000×1.25 = 250 + 60 + 900 + 2000 + 6250
        ("claude-3-haiku", 9_460),
        // 1000×15 + 2000×1.5 + 3000×18.75 + 4000×30 + 5000×75 = 15000 + 3000 + 56250 + 120000 + 375000
        ("claude-3-opus", 569_250),
        ("claude-opus-4", 569_250),
        ("claude-opus-4-1", 569_250),
        // 1000×.8 + 2000×.08 + 3000×1 + 4000×1.6 + 5000×4 = 800 + 160 + 3000 + 6400 + 20000
        ("claude-3-5-haiku", 30_360),
        // 1000×3 + 2000×.3 + 3000×3.75 + 4000×6 + 5000×15 = 3000 + 600 + 11250 + 24000 + 75000
        ("claude-3-5-sonnet", 113_850),
        ("claude-3-7-sonnet", 113_850),
        ("claude-sonnet-4", 113_850),
        ("claude-sonnet-4-5", 113_850),
        ("claude-sonnet-4-6", 113_850),
        // 1000×1 + 2000×.1 + 3000×1.25 + 4000×2 + 5000×5 = 1000 + 200 + 3750 + 8000 + 25000
        ("claude-haiku-4-5", 37_950),
        // 1000×5 + 2000×.5 + 3000×6.25 + 4000×10 + 5000×25 = 5000 + 1000 + 18750 + 40000 + 125000
        ("claude-opus-4-5", 189_750),
        ("claude-opus-4-6", 189_750),
        ("claude-opus-4-7", 189_750),
        ("claude-opus-4-8", 189_750),
        ("claude-opus-5", 189_750),
        // 1000×2 + 2000×.2 + 3000×2.5 + 4000×4 + 5000×10 = 2000 + 400 + 7500 + 16000 + 50000
        ("claude-sonnet-5", 75_900),
        // 1000×4 + 2000×.2 + 3000×5 + 4000×8 + 5000×20 = 4000 + 400 + 15000 + 32000 + 100000
        ("claude-opus-5-5", 151_400),
        // 1000×2 + 2000×.1 + 3000×2.5 + 4000×4 + 5000×10 = 2000 + 200 + 7500 + 16000 + 50000
        ("claude-sonnet-5-5", 75_700),
        // 1000×.1 + 2000×.01 + 3000×.125 + 4000×.2 + 5000×.5 = 100 + 20 + 375 + 800 + 2500
        ("claude-haiku-5-5", 3_795),
        // 1000×10 + 2000×1 + 3000×12.5 + 4000×20 + 5000×50 = 10000 + 2000 + 37500 + 80000 + 250000
        ("claude-fable-5", 379_500),
        ("claude-mythos-5", 379_500),
        // 1000×10 + 2000×.25 + 3000×12.5 + 4000×20 + 5000×50 = 10000 + 500 + 37500 + 80000 + 250000
        ("claude-fable-5-1", 378_000),
        ("claude-mythos-5-1", 378_000),
    ];
    assert_eq!(PriceBook::builtin().len(), cases.len());
    for (model, micros) in cases {
        let c = cost(model, &mixed(), None, None);
        assert_eq!(c.total, micro_usd(micros), "{model}");
        assert_eq!(c.total, c.input + c.cache_read + c.cache_write_5m + c.cache_write_1h + c.output);
        assert_eq!(&*c.priced_as, model);
        assert!(!c.long_context && !c.batch && !c.fast, "{model}");
    }
    let book = PriceBook::builtin();
    let names: Vec<&str> = book.models().map(|(id, _)| id).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
}

#[test]
fn breakdown_uses_each_kinds_own_rate() {
    let c = cost("claude-sonnet-4-5", &mixed(), None, None);
    assert_eq!(c.input, micro_usd(3_000));
    assert_eq!(c.cache_read, micro_usd(600));
    assert_eq!(c.cache_write_5m, micro_usd(11_250));
    assert_eq!(c.cache_write_1h, micro_usd(24_000));
    assert_eq!(c.output, micro_usd(75_000));
    // 2000 × (3 − 0.3)
    assert_eq!(c.cache_savings, micro_usd(5_400));
}

#[test]
fn one_hour_writes() {
    // Opus 4.1: 10,000 × $30 = $0.30 for 1h writes, 10,000 × $18.75 = $0.1875 for 5m writes.
    let c = cost("claude-opus-4-1", &usage(0, 0, 0, 10_000, 0), None, None);
    assert_eq!(c.cache_write_1h, Money::from_picos(300_000_000_000));
    assert_eq!(c.total.to_string(), "$0.30");
    let c = cost("claude-opus-4-1", &usage(0, 0, 10_000, 0, 0), None, None);
    assert_eq!(c.total.to_string(), "$0.1875");
}

#[test]
fn reasoning_is_not_billed_separately() {
    let mut tokens = mixed();
    tokens.reasoning = 4_000;
    assert_eq!(cost("claude-sonnet-4-5", &tokens, None, None).total, micro_usd(113_850));
}

#[test]
fn batch_halves_everything() {
    let c = cost("claude-sonnet-4-5", &mixed(), Some("batch"), None);
    assert!(c.batch);
    assert_eq!(c.total, Money::from_picos(56_925_000_000));
    assert_eq!(c.cache_savings, micro_usd(2_700));
    let c = cost("claude-sonnet-4-5", &mixed(), Some(" BATCH "), None);
    assert!(c.batch);
    let c = cost("claude-sonnet-4-5", &mixed(), Some("standard"), None);
    assert!(!c.batch);
    // Haiku 5.5: 3795 / 2 = 1897.5 micro-USD, exact in picos (its 5m write is 62,500 picos per token).
    let c = cost("claude-haiku-5-5", &mixed(), Some("batch"), None);
    assert_eq!(c.total, Money::from_picos(1_897_500_000));
    assert_eq!(cost("claude-haiku-5-5", &usage(0, 0, 1, 0, 0), Some("batch"), None).total, Money::from_picos(62_500));
}

#[test]
fn fast_mode() {
    // Opus 4.6 fast: 6 × 189,750.
    let c = cost("claude-opus-4-6", &mixed(), None, Some("fast"));
    assert!(c.fast);
    assert_eq!(c.total, micro_usd(1_138_500));
    assert_eq!(c.total.to_string(), "$1.1385");
    // Fast + batch: × 6 / 2.
    let c = cost("claude-opus-4-6", &mixed(), Some("batch"), Some("FAST"));
    assert!(c.fast && c.batch);
    assert_eq!(c.total, micro_usd(569_250));
    // Opus 4.8, Opus 5, Opus 5.5: 2x.
    assert_eq!(cost("claude-opus-4-8", &mixed(), None, Some("fast")).total, micro_usd(379_500));
    assert_eq!(cost("claude-opus-5", &mixed(), None, Some("fast")).total, micro_usd(379_500));
    assert_eq!(cost("claude-opus-5-5", &mixed(), None, Some("fast")).total, micro_usd(302_800));
    // No fast mode: standard rates, `fast: false`.
    for model in ["claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5"] {
        let standard = cost(model, &mixed(), None, None);
        let c = cost(model, &mixed(), None, Some("fast"));
        assert!(!c.fast, "{model}");
        assert_eq!(c, standard, "{model}");
    }
    // Other speeds are standard.
    let c = cost("claude-opus-4-6", &mixed(), None, Some("standard"));
    assert!(!c.fast);
    assert_eq!(c.total, micro_usd(189_750));
}

#[test]
fn long_context_rule() {
    // 100,000 × 6 + 150,000 × 0.6 + 1,000 × 22.5 = 600,000 + 90,000 + 22,500 micro-USD.
    let c = cost("claude-sonnet-4-5", &usage(100_000, 150_000, 0, 0, 1_000), None, None);
    assert!(c.long_context);
    assert_eq!(c.total, Money::from_picos(712_500_000_000));
    assert_eq!(c.total.to_string(), "$0.7125");
    assert_eq!(c.output, micro_usd(22_500));
    // Savings at the long-context rates: 150,000 × (6 − 0.6).
    assert_eq!(c.cache_savings, micro_usd(810_000));

    // 300,000 × 6 + 1,000 × 22.5.
    let c = cost("claude-sonnet-4-5", &usage(300_000, 0, 0, 0, 1_000), None, None);
    assert!(c.long_context);
    assert_eq!(c.total.to_string(), "$1.8225");

    // Exactly 200,000 prompt tokens is not long context: 200,000 × 3 + 1,000 × 15.
    let c = cost("claude-sonnet-4", &usage(200_000, 0, 0, 0, 1_000), None, None);
    assert!(!c.long_context);
    assert_eq!(c.total, micro_usd(615_000));
    // … and one more token of any prompt kind is.
    for tokens in [
        usage(200_001, 0, 0, 0, 0),
        usage(200_000, 1, 0, 0, 0),
        usage(200_000, 0, 1, 0, 0),
        usage(200_000, 0, 0, 1, 0),
        usage(0, 100_000, 50_000, 50_001, 0),
    ] {
        assert!(cost("claude-sonnet-4-5", &tokens, None, None).long_context, "{tokens:?}");
    }
    // Output does not count towards the threshold.
    assert!(!cost("claude-sonnet-4-5", &usage(200_000, 0, 0, 0, 100_000), None, None).long_context);

    // Sonnet 4.6 has no long-context rates: 300,000 × 3 + 1,000 × 15.
    let c = cost("claude-sonnet-4-6", &usage(300_000, 0, 0, 0, 1_000), None, None);
    assert!(!c.long_context);
    assert_eq!(c.total, micro_usd(915_000));

    // Long context + batch: half of $1.8225.
    let c = cost("claude-sonnet-4-5", &usage(300_000, 0, 0, 0, 1_000), Some("batch"), None);
    assert!(c.long_context && c.batch);
    assert_eq!(c.total.to_string(), "$0.91125");
}

#[test]
fn modifiers_stack() {
    let sonnet = PriceBook::builtin().resolve("claude-sonnet-4-5").expect("builtin");
    let price = sonnet.price().clone().with_fast_multiplier(4);
    let book = PriceBook::empty().with_price("stacked", price);
    let c = book.price("stacked", &usage(300_000, 0, 0, 0, 1_000), Some("batch"), Some("fast")).expect("priced");
    assert!(c.long_context && c.batch && c.fast);
    // 1,822,500 × 4 / 2.
    assert_eq!(c.total, micro_usd(3_645_000));
}

#[test]
fn a_zero_fast_multiplier_is_read_as_one_never_as_free() {
    let sonnet = PriceBook::builtin().resolve("claude-sonnet-4-5").expect("builtin");
    let book = PriceBook::empty().with_price("zero", sonnet.price().clone().with_fast_multiplier(0));
    let standard = book.price("zero", &usage(1_000, 0, 0, 0, 1_000), None, None).expect("priced");
    let fast = book.price("zero", &usage(1_000, 0, 0, 0, 1_000), None, Some("fast")).expect("priced");
    assert_eq!(standard.total, micro_usd(18_000));
    assert_eq!(fast.total, standard.total);
}

#[test]
fn huge_token_counts_do_not_panic() {
    let max = usage(u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    let book = PriceBook::builtin();
    for (model, _) in book.models() {
        for tier in [None, Some("batch")] {
            for speed in [None, Some("fast")] {
                let c = book.price(model, &max, tier, speed).expect("priced");
                assert!(c.total >= c.output);
            }
        }
    }
    // Exact where it fits: u64::MAX × $75/Mtok.
    let c = book.price("claude-opus-4-1", &usage(0, 0, 0, 0, u64::MAX), None, None).expect("priced");
    assert_eq!(c.output.picos(), u128::from(u64::MAX) * 75_000_000);
    // Saturates where it does not.
    let rates = Rates::per_mtok_micros(u64::MAX, u64::MAX, u64::MAX, u64::MAX, 0);
    let book = PriceBook::empty().with_price("x", ModelPrice::new(rates).with_fast_multiplier(u32::MAX));
    let c = book.price("x", &max, None, Some("fast")).expect("priced");
    assert_eq!(c.output, Money::from_picos(u128::MAX));
    assert_eq!(c.total, Money::from_picos(u128::MAX));
    let c = book.price("x", &max, Some("batch"), Some("fast")).expect("priced");
    assert_eq!(c.output.picos(), u128::MAX / 2 + 1);
    // In the US only, no less: the tenth more of a saturated amount was a tenth of it.
    let x = book.resolve("x").unwrap();
    let c = x.cost_in_geo(&max, None, Some("fast"), Some("us"));
    assert_eq!((c.output.picos(), c.total.picos()), (u128::MAX, u128::MAX));
    let c = x.cost_in_geo(&max, Some("batch"), Some("fast"), Some("us"));
    assert_eq!(c.output.picos(), u128::MAX / 2 + 1);
}

#[test]
fn resolves_every_id_form() {
    let book = PriceBook::builtin();
    let cases = [
        ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-0", "claude-sonnet-4"),
        ("claude-opus-4-0", "claude-opus-4"),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("eu.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
        ("global.anthropic.claude-opus-4-6-v1", "claude-opus-4-6"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-3-haiku-20240307", "claude-3-haiku"),
        ("claude-3-opus-latest", "claude-3-opus"),
        ("CLAUDE-HAIKU-5-5", "claude-haiku-5-5"),
        ("anthropic:claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("bedrock:us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("google-vertex:claude-opus-4-1@20250805", "claude-opus-4-1"),
    ];
    for (id, canonical) in cases {
        let model = book.resolve(id).unwrap_or_else(|| panic!("{id} should resolve"));
        assert_eq!(model.canonical(), canonical, "{id}");
    }
}

#[test]
fn unknown_ids_are_unpriced() {
    let book = PriceBook::builtin();
    let long = "x".repeat(10 * 1024);
    let weird = "é🦀@:/.[".repeat(1_000);
    for id in [
        "gpt-4o",
        "",
        "   ",
        long.as_str(),
        weird.as_str(),
        "claude-sonnet-9",
        "claude-2.1",
        "claude-instant-1",
        "claude-opus-4-6-fast",
        "claude-opus-4-6:fast",
        "claude-opus-4-6[fast]",
        "claude-3-haiku-20240307:ft-acme",
        "anthropic/claude-3.7-sonnet:free",
        "claude",
        "anthropic:",
        "anthropic:gpt-4o",
        "ft:claude-haiku-4-5:acme::abc123",
    ] {
        assert!(book.resolve(id).is_none(), "{id:.40}");
        assert!(book.price(id, &mixed(), None, None).is_none());
    }
    assert!(PriceBook::empty().resolve("claude-sonnet-4-5").is_none());
}

#[test]
fn an_empty_book_says_so_until_a_price_is_set() {
    let mut book = PriceBook::empty();
    assert!(book.is_empty());
    assert_eq!((book.len(), book.models().count()), (0, 0));
    book.set("my-finetune", ModelPrice::new(Rates::with_default_cache(2_000_000, 8_000_000)));
    assert!(!book.is_empty());
    assert_eq!(book.len(), 1);
    assert!(!PriceBook::builtin().is_empty());
}

#[test]
fn ids_that_differ_after_a_colon_are_different_models() {
    // Everything from the first `:` was dropped from every id: two OpenAI fine-tunes (or `llama3:8b` and
    // `llama3:70b`) were one model `ft`, priced alike, and a Claude fine-tune got their price.
    let mut book = PriceBook::builtin();
    let mini = Rates::with_default_cache(300_000, 1_200_000);
    book.set("ft:gpt-4o-mini-2024-07-18:acme::A1", ModelPrice::new(mini));
    assert_eq!(book.resolve("ft:gpt-4o-mini-2024-07-18:acme::A1").expect("set").price().standard, mini);
    assert!(book.resolve("ft:gpt-4o-2024-08-06:acme::B2").is_none());
    assert!(book.resolve("ft:claude-3-haiku:acme::C3").is_none());
    book.set("llama3:8b", ModelPrice::new(mini));
    assert!(book.resolve("llama3:70b").is_none());
    assert_eq!(normalize_model_id("llama3:8b"), "llama3:8b");
    // Bedrock's `:0` revision still goes, Claude or not; a model version only from a Claude id (elsewhere it
    // names another model: `amazon.titan-embed-text-v1` and `-v2`).
    assert_eq!(normalize_model_id("meta.llama3-1-70b-instruct-v1:0"), "meta.llama3-1-70b-instruct-v1");
    assert_eq!(normalize_model_id("amazon.nova-pro-v1:0"), "amazon.nova-pro-v1");
    assert_eq!(normalize_model_id("us.anthropic.claude-sonnet-4-5-20250929-v1:0"), "claude-sonnet-4-5");
    assert_eq!(normalize_model_id("anthropic.claude-3-5-sonnet-20240620-v1:0:200k"), "claude-3-5-sonnet");
}

#[test]
fn another_version_or_host_of_a_model_not_claudes_is_not_priced() {
    let mut book = PriceBook::empty();
    let rates = Rates::with_default_cache(1_000_000, 2_000_000);
    book.set("acme-model@001", ModelPrice::new(rates));
    book.set("my-model[eu]", ModelPrice::new(rates));
    book.set("openai/gpt-4o", ModelPrice::new(rates));
    assert!(book.resolve("acme-model@001").is_some());
    assert!(book.resolve("acme-model@002").is_none());
    assert!(book.resolve("my-model[us]").is_none());
    assert!(book.resolve("azure/gpt-4o").is_none());
    assert!(book.resolve("gpt-4o").is_none());
}

#[test]
fn set_normalizes_and_replaces() {
    let mut book = PriceBook::builtin();
    let rates = Rates::with_default_cache(1_000_000, 2_000_000);
    book.set("My-Finetune-20250101", ModelPrice::new(rates));
    book.set("claude-sonnet-4-5-20250929", ModelPrice::new(rates));
    assert_eq!(book.resolve("my-finetune-20250101").expect("set").price().standard, rates);
    assert!(book.resolve("my-finetune-20250601").is_none(), "another snapshot of a model not Claude's: not guessed");
    let sonnet = book.resolve("claude-sonnet-4-5").expect("set");
    // The whole price is replaced (long-context rates gone), but not the model's minimum cacheable prompt.
    assert_eq!(sonnet.price(), &ModelPrice::new(rates).with_min_cacheable_tokens(1_024));
    book.set("claude-haiku-4-5", ModelPrice::new(rates).with_min_cacheable_tokens(2_048));
    assert_eq!(book.resolve("claude-haiku-4-5").unwrap().price().min_cacheable_tokens, Some(2_048));
    assert_eq!(PriceBook::default().len(), PriceBook::builtin().len());
}

#[test]
fn call_cost_serializes() {
    let c = cost("claude-sonnet-4-5", &mixed(), None, None);
    let json = serde_json::to_value(&c).expect("serializes");
    assert_eq!(json["total"], 113_850_000_000u64);
    assert_eq!(json["priced_as"], "claude-sonnet-4-5");
    let back: CallCost = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, c);
}

// ---- price files ----

const GOOD: &str = r#"
# overrides
[models."claude-sonnet-4-5"]
input = 4
output = 20.0
cache_write_5m = 5.0
cache_write_1h = 8
cache_read = 0.4
fast_multiplier = 3

[models."claude-sonnet-4-5".long_context]
input = 8.0
output = 30

[models."My-Finetune"]
input = 1
output = 2

[models]
"inline-model" = { input = 0.000001, output = 1.5e1 }
"#;

#[test]
fn a_price_file_sets_a_models_minimum_cacheable_prompt() {
    let mut book = PriceBook::builtin();
    let file = "[models.\"claude-haiku-4-5\"]\ninput = 1\noutput = 5\nmin_cacheable_tokens = 2048\n\n\
                [models.\"my-model\"]\ninput = 1\noutput = 2\nmin_cacheable_tokens = 512\n";
    book.merge_toml_str(file, "prices.toml").expect("valid file");
    assert_eq!(book.resolve("claude-haiku-4-5").unwrap().price().min_cacheable_tokens, Some(2_048));
    assert_eq!(book.resolve("my-model").unwrap().price().min_cacheable_tokens, Some(512));
    // A model the built-in book has no minimum for, overridden without one: none.
    book.merge_toml_str("[models.\"claude-opus-4-7\"]\ninput = 5\noutput = 25\n", "p.toml").unwrap();
    assert_eq!(book.resolve("claude-opus-4-7").unwrap().price().min_cacheable_tokens, None);
    for bad in ["0", "-5", "1.5", "\"4096\""] {
        let text = format!("[models.\"m\"]\ninput = 1\noutput = 2\nmin_cacheable_tokens = {bad}\n");
        let err = PriceBook::builtin().merge_toml_str(&text, "p.toml").expect_err(bad).to_string();
        assert!(err.contains("models.m.min_cacheable_tokens") && err.contains("whole number of tokens"), "{err}");
    }
}

#[test]
fn good_file_overrides_and_adds() {
    let mut book = PriceBook::builtin();
    let before = book.len();
    book.merge_toml_str(GOOD, "prices.toml").expect("valid file");
    assert_eq!(book.len(), before + 2);

    let sonnet = book.resolve("us.anthropic.claude-sonnet-4-5-20250929-v1:0").expect("priced");
    assert_eq!(
        sonnet.price(),
        &ModelPrice::new(Rates::per_mtok_micros(4_000_000, 20_000_000, 5_000_000, 8_000_000, 400_000))
            .with_fast_multiplier(3)
            .with_long_context(Rates::per_mtok_micros(8_000_000, 30_000_000, 10_000_000, 16_000_000, 800_000))
            // Not a price: the table does not name it, and the built-in minimum stays.
            .with_min_cacheable_tokens(1_024)
    );
    let finetune = book.resolve("my-finetune").expect("added");
    assert_eq!(
        finetune.price(),
        &ModelPrice::new(Rates::per_mtok_micros(1_000_000, 2_000_000, 1_250_000, 2_000_000, 100_000))
    );
    let inline = book.resolve("inline-model").expect("added");
    assert_eq!(inline.price().standard.input, 1);
    assert_eq!(inline.price().standard.output, 15_000_000);
    // Untouched models keep their built-in price.
    assert_eq!(book.resolve("claude-haiku-4-5"), PriceBook::builtin().resolve("claude-haiku-4-5"));

    // The file works through the path API too.
    let dir = std::env::temp_dir().join(format!("tokenmeter-pricing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("prices.toml");
    std::fs::write(&path, GOOD).expect("write");
    let mut from_file = PriceBook::empty();
    from_file.merge_toml_file(&path).expect("valid file");
    assert_eq!(from_file.len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_file_is_an_io_error() {
    let err = PriceBook::empty().merge_toml_file("/nonexistent/tokenmeter/prices.toml").unwrap_err();
    assert!(matches!(err, PriceBookError::Io { .. }));
    assert!(err.to_string().starts_with("cannot read price file /nonexistent/tokenmeter/prices.toml: "), "{err}");
}

/// Merges `text` into the built-in book, expecting an error; checks the book is unchanged.
fn bad(text: &str) -> PriceBookError {
    let mut book = PriceBook::builtin();
    let err = book.merge_toml_str(text, "prices.toml").unwrap_err();
    let unchanged: Vec<_> = book.models().map(|(k, v)| (k.to_owned(), v.clone())).collect();
    let builtin: Vec<_> = PriceBook::builtin().models().map(|(k, v)| (k.to_owned(), v.clone())).collect();
    assert_eq!(unchanged, builtin, "a failed merge must not change the book");
    err
}

#[test]
fn syntax_error_has_line_and_column() {
    let err = bad("[models.\"x\"]\ninput = 1\noutput = \n");
    assert!(matches!(err, PriceBookError::Syntax { line: 3, column: 10, .. }), "{err:?}");
    assert!(err.to_string().starts_with("prices.toml:3:10: "), "{err}");

    let err = bad("[models.\"x\"]\ninput = 1\ninput = 2\noutput = 3\n");
    assert!(err.to_string().starts_with("prices.toml:3:1: "), "{err}");
    assert!(err.to_string().contains("duplicate key"), "{err}");

    let err = bad("[models.x\n");
    assert!(err.to_string().starts_with("prices.toml:1:"), "{err}");
}

#[test]
fn string_where_a_number_belongs() {
    let text = "\
[models.\"claude-x\"]
input = 3.0
cache_write_5m = 3.75
cache_write_1h = 6.0
cache_read = 0.3
# output follows
output = \"abc\"
";
    let err = bad(text);
    assert_eq!(
        err.to_string(),
        "prices.toml:7: field `models.claude-x.output`: expected a non-negative number of USD per \
         million tokens, found string \"abc\""
    );
    assert!(matches!(err, PriceBookError::Field { line: 7, .. }));
}

#[test]
fn negative_price() {
    let err = bad("[models.a]\ninput = 1\noutput = 2\ncache_read = -0.3\n");
    assert_eq!(
        err.to_string(),
        "prices.toml:4: field `models.a.cache_read`: expected a non-negative number of USD per \
         million tokens, found -0.3"
    );
    let err = bad("[models.a]\ninput = -1\noutput = 2\n");
    assert!(err.to_string().starts_with("prices.toml:2: field `models.a.input`: "), "{err}");
}

#[test]
fn unknown_keys() {
    let err = bad("[models.a]\ninput = 1\noutput = 2\noutptu = 3\n");
    let text = err.to_string();
    assert!(text.starts_with("prices.toml:4: field `models.a.outptu`: unknown key"), "{text}");

    let err =
        bad("[models.a]\ninput = 1\noutput = 2\n[models.a.long_context]\ninput = 1\noutput = 2\nfast_multiplier = 2\n");
    assert!(
        err.to_string().starts_with("prices.toml:7: field `models.a.long_context.fast_multiplier`: unknown key"),
        "{err}"
    );

    let err = bad("currency = \"EUR\"\n[models.a]\ninput = 1\noutput = 2\n");
    assert!(err.to_string().starts_with("prices.toml:1: field `currency`: unknown key"), "{err}");
}

#[test]
fn missing_output_names_the_table_line() {
    let err = bad("\n\n[models.\"claude-x\"]\ninput = 3.0\ncache_read = 0.3\n");
    assert_eq!(err.to_string(), "prices.toml:3: field `models.claude-x`: missing `output` (USD per million tokens)");
    let err = bad("[models.a]\ninput = 1\noutput = 2\n\n[models.a.long_context]\ncache_read = 1\n");
    assert_eq!(
        err.to_string(),
        "prices.toml:5: field `models.a.long_context`: missing `input` and `output` (USD per million tokens)"
    );
}

#[test]
fn other_bad_values() {
    let cases = [
        ("[models.a]\ninput = 0.0000001\noutput = 2\n", 2, "models.a.input", "more precise than 0.000001"),
        ("[models.a]\ninput = inf\noutput = 2\n", 2, "models.a.input", "found inf"),
        ("[models.a]\ninput = nan\noutput = 2\n", 2, "models.a.input", "found nan"),
        ("[models.a]\ninput = 1e30\noutput = 2\n", 2, "models.a.input", "too large"),
        ("[models.a]\ninput = 99999999999999\noutput = 2\n", 2, "models.a.input", "too large"),
        ("[models.a]\ninput = true\noutput = 2\n", 2, "models.a.input", "found boolean true"),
        ("[models.a]\ninput = [1]\noutput = 2\n", 2, "models.a.input", "found an array"),
        ("[models.a]\ninput = 1\noutput = 2\nfast_multiplier = 0\n", 4, "models.a.fast_multiplier", "at least 1"),
        ("[models.a]\ninput = 1\noutput = 2\nfast_multiplier = 2.5\n", 4, "models.a.fast_multiplier", "found 2.5"),
        ("[models.a]\ninput = 1\noutput = 2\nlong_context = 5\n", 4, "models.a.long_context", "found 5"),
        ("models = 5\n", 1, "models", "expected a table of models"),
        ("[models]\na = 5\n", 2, "models.a", "expected a table with at least `input` and `output`"),
        ("[models.\"\"]\ninput = 1\noutput = 2\n", 1, "models.\"\"", "empty model id"),
        (
            "[models.\"claude-sonnet-4-5\"]\ninput = 1\noutput = 2\n[models.\"claude-sonnet-4-5-20250929\"]\ninput = 1\noutput = 2\n",
            4,
            "models.claude-sonnet-4-5-20250929",
            "same model as `models.claude-sonnet-4-5` on line 1",
        ),
    ];
    for (text, line, field, message) in cases {
        let err = bad(text);
        let shown = err.to_string();
        let prefix = format!("prices.toml:{line}: field `{field}`: ");
        assert!(shown.starts_with(&prefix), "{text:?}: {shown}");
        assert!(shown.contains(message), "{text:?}: {shown}");
    }
}

#[test]
fn us_only_inference_is_a_tenth_more_on_every_token_kind() {
    let opus = PriceBook::builtin().resolve("claude-opus-4-6").unwrap();
    let global = opus.cost(&mixed(), None, None);
    assert_eq!(global.total, micro_usd(189_750));
    // 189,750 × 1.1 = 208,725 micro-USD, each kind and the saving a tenth more.
    let us = opus.cost_in_geo(&mixed(), None, None, Some("us"));
    assert!(us.regional && !global.regional);
    assert_eq!(us.total, micro_usd(208_725));
    for (a, b) in [
        (us.input, global.input),
        (us.cache_read, global.cache_read),
        (us.cache_write_5m, global.cache_write_5m),
        (us.cache_write_1h, global.cache_write_1h),
        (us.output, global.output),
        (us.cache_savings, global.cache_savings),
    ] {
        assert_eq!(a.picos() * 10, b.picos() * 11);
    }
    // With batch (× 1.1 / 2) and fast mode (× 6 × 1.1); case and spaces as for the other rules.
    assert_eq!(
        opus.cost_in_geo(&mixed(), Some("batch"), None, Some(" US ")).total,
        micro_usd(104_362) + Money::from_picos(500_000)
    );
    assert_eq!(opus.cost_in_geo(&mixed(), None, Some("fast"), Some("us")).total, micro_usd(1_252_350));
    // Anywhere else, or not said: standard.
    for geo in [None, Some("global"), Some("not_available"), Some("")] {
        let c = opus.cost_in_geo(&mixed(), None, None, geo);
        assert_eq!(c, global, "{geo:?}");
    }
}

#[test]
fn a_us_only_call_rounds_once_half_up() {
    // A custom rate of 1 pico-USD a token, so that the tenths and halves show (a Claude id: it pays the premium).
    let book = PriceBook::empty().with_price("claude-tiny", ModelPrice::new(Rates::per_mtok_micros(1, 1, 1, 1, 1)));
    let tiny = book.resolve("claude-tiny").unwrap();
    let picos =
        |n: u64, tier: Option<&str>| tiny.cost_in_geo(&usage(n, 0, 0, 0, 0), tier, None, Some("us")).total.picos();
    assert_eq!(picos(7, None), 8, "7.7 rounds up");
    assert_eq!(picos(4, None), 4, "4.4 rounds down");
    assert_eq!(picos(5, None), 6, "5.5 rounds half up");
    assert_eq!(picos(7, Some("batch")), 4, "3.85");
    // 15 × 1.1 / 2 = 8.25 → 8: rounding the tenth first (16.5 → 17) and then the half (8.5 → 9) gives 9.
    assert_eq!(picos(15, Some("batch")), 8);
}

#[test]
fn a_record_is_priced_with_its_inference_geography() {
    let opus = PriceBook::builtin().resolve("claude-opus-4-6").unwrap();
    let mut record = crate::journal::line::tests::bare();
    record.tokens = mixed();
    record.web_search_requests = 2;
    record.inference_geo = Some(Arc::from("us"));
    let c = opus.price_call(&record);
    assert!(c.regional);
    // The search fee ($0.01 each) is flat.
    assert_eq!(c.web_search, micro_usd(20_000));
    assert_eq!(c.total, micro_usd(208_725 + 20_000));
}

#[test]
fn a_web_search_fee_set_on_the_book_prices_each_search() {
    let mut book = PriceBook::builtin();
    assert_eq!(book.web_search_fee(), micro_usd(10_000), "$10 per 1,000 by default");
    // $25 per 1,000 searches: $0.025 each.
    book.set_web_search_fee(micro_usd(25_000));
    assert_eq!(book.web_search_fee(), micro_usd(25_000));
    let mut record = crate::journal::line::tests::bare();
    record.tokens = usage(1_000, 0, 0, 0, 1_000);
    record.web_search_requests = 3;
    let haiku = book.resolve("claude-haiku-4-5").unwrap();
    assert_eq!(haiku.web_search_fee(), micro_usd(25_000), "the resolved model carries the book's fee");
    let c = haiku.price_call(&record);
    // 1,000 × $1 + 1,000 × $5 per Mtok = 6,000 micro-USD of tokens; 3 × $0.025 of searches.
    assert_eq!(c.web_search, micro_usd(75_000));
    assert_eq!(c.total, micro_usd(6_000 + 75_000));
}

#[test]
fn bedrock_and_vertex_regional_endpoints_are_a_tenth_more_from_sonnet_4_5_on() {
    // Bedrock and Vertex AI: "Regional endpoints include a 10% pricing premium over global endpoints", for Claude
    // Sonnet 4.5 and later; Sonnet 4, Opus 4 and earlier keep their prices. Priced at the global rates, a call on
    // a regional profile read a tenth low (a US-only call's 1.1x applied only to `inference_geo = "us"`).
    let book = PriceBook::builtin();
    let at = |model: &str, geo: Option<&str>| book.resolve(model).unwrap().cost_in_geo(&mixed(), None, None, geo);
    for model in ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-5", "claude-opus-4-6", "claude-haiku-5-5"] {
        let global = at(model, Some("global"));
        for geo in ["us", "eu", "apac", "jp", "au", "us-gov", "us-east5", "europe-west1", "US-EAST-1"] {
            let c = at(model, Some(geo));
            assert!(c.regional, "{model} {geo}");
            assert_eq!(c.total.picos() * 10, global.total.picos() * 11, "{model} {geo}");
        }
    }
    for model in ["claude-sonnet-4", "claude-opus-4", "claude-opus-4-1", "claude-3-7-sonnet", "claude-3-5-haiku"] {
        let c = at(model, Some("us"));
        assert!(!c.regional, "{model}");
        assert_eq!(c, at(model, None), "{model}");
    }
    // No geography named: standard.
    for geo in [
        "global",
        "GLOBAL",
        "not_available",
        "",
        " ",
        "default",
        "us_east",
        "-1",
        "east-",
        "1-east5",
        "gpt-4",
        "v-2",
        "gpt-4o",
        "us-",
        "us--east1",
        "us-east-1a",
    ] {
        assert!(!crate::pricing::is_regional_geography(Some(geo)), "{geo:?}");
    }
    for geo in ["northamerica-northeast1", "us-gov-west-1", "ap-southeast-2", "me-central2", " eu "] {
        assert!(crate::pricing::is_regional_geography(Some(geo)), "{geo:?}");
    }
    // Another vendor's model on a Vertex AI region (a price file's), and a Claude model a price file adds.
    let book = PriceBook::empty()
        .with_price("gemini-2.5-pro", ModelPrice::new(Rates::with_default_cache(1_250_000, 10_000_000)))
        .with_price("claude-fable-9", ModelPrice::new(Rates::with_default_cache(1_000_000, 5_000_000)));
    assert!(!book.resolve("gemini-2.5-pro").unwrap().bills_regional(Some("us-central1")));
    assert!(book.resolve("claude-fable-9").unwrap().bills_regional(Some("us-central1")));
}

#[test]
fn claude_2_and_instant_models_a_price_file_adds_pay_no_regional_premium() {
    // They came long before the premium (Claude Sonnet 4.5 on): priced from a file, a US-only call is standard.
    let rates = Rates::with_default_cache(8_000_000, 24_000_000);
    let book = PriceBook::empty()
        .with_price("claude-2.1", ModelPrice::new(rates))
        .with_price("claude-instant-1.2", ModelPrice::new(rates));
    for id in ["claude-2.1", "claude-instant-1.2"] {
        let model = book.resolve(id).unwrap();
        assert!(!model.bills_regional(Some("us")), "{id}");
        let c = model.cost_in_geo(&mixed(), None, None, Some("us"));
        assert!(!c.regional, "{id}");
        // 1000×8 + 2000×.8 + 3000×10 + 4000×16 + 5000×24 = 8000 + 1600 + 30000 + 64000 + 120000
        assert_eq!(c.total, micro_usd(223_600), "{id}");
    }
}

#[test]
fn fable_and_mythos_ids_resolve() {
    // As Claude Code, Bedrock and gateways write them.
    let book = PriceBook::builtin();
    for (id, canonical) in [
        ("claude-fable-5-1", "claude-fable-5-1"),
        ("claude-fable-5.1", "claude-fable-5-1"),
        ("claude-fable-5-1-20260907", "claude-fable-5-1"),
        ("global.anthropic.claude-fable-5-1", "claude-fable-5-1"),
        ("anthropic.claude-fable-5", "claude-fable-5"),
        ("anthropic/claude-fable-5", "claude-fable-5"),
        ("claude-mythos-5-1[1m]", "claude-mythos-5-1"),
        ("claude-mythos-5", "claude-mythos-5"),
        // The old name order and `-0` aliases, as for the other families.
        ("claude-5-fable", "claude-fable-5"),
        ("claude-5-1-fable", "claude-fable-5-1"),
        ("claude-5-mythos", "claude-mythos-5"),
        ("claude-5-1-mythos", "claude-mythos-5-1"),
        ("claude-fable-5-0", "claude-fable-5"),
        ("claude-mythos-5-0", "claude-mythos-5"),
    ] {
        assert_eq!(book.resolve(id).map(|m| m.canonical().to_owned()).as_deref(), Some(canonical), "{id}");
    }
}

#[test]
fn a_bedrock_inference_profile_says_its_geography() {
    use super::normalize::{bedrock_geography, vertex_geography};
    for (id, geography) in [
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", Some("us")),
        ("EU.anthropic.claude-haiku-4-5-20251001-v1:0", Some("eu")),
        ("apac.anthropic.claude-sonnet-4-5-20250929-v1:0", Some("apac")),
        ("us-gov.anthropic.claude-sonnet-4-5-20250929-v1:0", Some("us-gov")),
        ("global.anthropic.claude-opus-4-6-v1", Some("global")),
        ("bedrock:us.anthropic.claude-sonnet-4-5-20250929-v1:0", Some("us")),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/jp.anthropic.claude-sonnet-4-5-20250929-v1:0",
            Some("jp"),
        ),
        (" au.anthropic.claude-sonnet-4-5-20250929-v1:0 ", Some("au")),
        // No profile, or one whose routing its id does not say, or not Claude: nothing.
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", None),
        ("claude-sonnet-4-5-20250929", None),
        ("claude-sonnet-4-5@20250929", None),
        ("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3", None),
        ("us.meta.llama3-1-70b-instruct-v1:0", None),
        ("us.anthropic.", None),
        ("mars.anthropic.claude-sonnet-4-5", None),
        ("", None),
    ] {
        assert_eq!(bedrock_geography(id), geography, "{id:?}");
    }
    for (host, geography) in [
        ("us-east5-aiplatform.googleapis.com", Some("us-east5")),
        ("europe-west1-aiplatform.googleapis.com", Some("europe-west1")),
        ("aiplatform.googleapis.com", Some("global")),
        ("AIPlatform.googleapis.com.", Some("global")),
        ("us-east5-aiplatform.googleapis.com:443", Some("us-east5")),
        ("aiplatform.us.rep.googleapis.com", None),
        ("-aiplatform.googleapis.com", None),
        ("xaiplatform.googleapis.com", None),
        ("api.anthropic.com", None),
        ("bedrock-runtime.us-east-1.amazonaws.com", None),
    ] {
        assert_eq!(vertex_geography(host), geography, "{host:?}");
    }
}

#[test]
fn a_record_on_a_bedrock_profile_is_priced_at_its_geography() {
    let book = PriceBook::builtin();
    let mut record = crate::journal::line::tests::bare();
    record.tokens = mixed();
    let mut priced = |model: &str, geo: Option<&str>| {
        record.model = Some(Arc::from(model));
        record.inference_geo = geo.map(Arc::from);
        book.resolve(model).unwrap().price_call(&record)
    };
    let global = priced("global.anthropic.claude-sonnet-4-5-20250929-v1:0", None);
    assert!(!global.regional);
    let regional = priced("us.anthropic.claude-sonnet-4-5-20250929-v1:0", None);
    assert!(regional.regional);
    assert_eq!(regional.total.picos() * 10, global.total.picos() * 11);
    // A recorded geography is the call's own word; one that says nothing (Claude Code writes `""`; the API's
    // `not_available`) leaves it to the profile.
    assert!(!priced("us.anthropic.claude-sonnet-4-5-20250929-v1:0", Some("global")).regional);
    for unstated in ["", "not_available"] {
        assert!(priced("us.anthropic.claude-sonnet-4-5-20250929-v1:0", Some(unstated)).regional, "{unstated:?}");
    }
    // The journal's earlier name for the flag is read as it.
    let cost: CallCost = serde_json::from_str(
        r#"{"total":1,"input":1,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":0,"priced_as":"x","us_only":true}"#,
    )
    .unwrap();
    assert!(cost.regional);
}

#[test]
fn haiku_5_5_is_long_context_over_100000_prompt_tokens() {
    // Its overview page: prompts over 100,000 tokens (input, cache reads and writes) pay five times every rate, on
    // every token of the request. Priced at the 200,000-token line, such a call read a fifth of its cost.
    let c = cost("claude-haiku-5-5", &usage(100_000, 0, 0, 0, 1_000), None, None);
    assert!(!c.long_context);
    // 100,000 × $0.10 + 1,000 × $0.50 per million.
    assert_eq!(c.total, micro_usd(10_500));
    for tokens in [usage(100_001, 0, 0, 0, 1_000), usage(40_000, 60_000, 1, 0, 1_000), usage(0, 0, 0, 100_001, 1_000)] {
        let c = cost("claude-haiku-5-5", &tokens, None, None);
        assert!(c.long_context, "{tokens:?}");
    }
    // 60,001 × $0.50 + 30,000 × $0.05 + 10,000 × $0.625 + 2,000 × $1 + 1,000 × $2.50 per million.
    let c = cost("claude-haiku-5-5", &usage(60_001, 30_000, 10_000, 2_000, 1_000), None, None);
    let picos = 60_001 * 500_000 + 30_000 * 50_000 + 10_000 * 625_000 + 2_000 * 1_000_000 + 1_000 * 2_500_000;
    assert_eq!(c.total, Money::from_picos(picos));
    let price = PriceBook::builtin().resolve("claude-haiku-5-5").unwrap().price().clone();
    assert_eq!(price.long_context_threshold(), 100_000);
    // Every other model with long-context rates keeps the 200,000-token line.
    assert_eq!(PriceBook::builtin().resolve("claude-sonnet-4-5").unwrap().price().long_context_threshold(), 200_000);
}

#[test]
fn a_price_file_sets_a_long_context_threshold() {
    let mut book = PriceBook::builtin();
    let file =
        "[models.a]\ninput = 1\noutput = 2\n[models.a.long_context]\ninput = 2\noutput = 4\nthreshold = 32_000\n";
    book.merge_toml_str(file, "prices.toml").unwrap();
    let a = book.resolve("a").unwrap();
    assert_eq!(a.price().long_context_threshold(), 32_000);
    assert!(!a.cost(&usage(32_000, 0, 0, 0, 0), None, None).long_context);
    assert!(a.cost(&usage(32_001, 0, 0, 0, 0), None, None).long_context);
    // Without it, 200,000; on the model's own table, or not a whole number of tokens, an error.
    book.merge_toml_str("[models.b]\ninput = 1\noutput = 2\n[models.b.long_context]\ninput = 2\noutput = 4\n", "p")
        .unwrap();
    assert_eq!(book.resolve("b").unwrap().price().long_context_threshold(), 200_000);
    // New long-context rates for a model with its own line keep that line (as its minimum cacheable prompt is
    // kept): a file giving Haiku 5.5 other long rates without `threshold` would otherwise move it to 200,000.
    book.merge_toml_str(
        "[models.\"claude-haiku-5-5\"]\ninput = 0.1\noutput = 0.5\n[models.\"claude-haiku-5-5\".long_context]\n\
         input = 0.4\noutput = 2\n",
        "p",
    )
    .unwrap();
    assert_eq!(book.resolve("claude-haiku-5-5").unwrap().price().long_context_threshold(), 100_000);
    let err = bad("[models.a]\ninput = 1\noutput = 2\nthreshold = 5\n");
    assert!(err.to_string().starts_with("prices.toml:4: field `models.a.threshold`: unknown key"), "{err}");
    let err =
        bad("[models.a]\ninput = 1\noutput = 2\n[models.a.long_context]\ninput = 2\noutput = 4\nthreshold = 0.5\n");
    assert!(err.to_string().contains("expected a whole number of prompt tokens"), "{err}");
    let err = bad("[models.a]\ninput = 1\noutput = 2\n[models.a.long_context]\ninput = 2\noutput = 4\nthreshold = 0\n");
    assert!(err.to_string().contains("expected a whole number of prompt tokens of at least 1"), "{err}");
}
