//! Model id normalization: every spelling of a Claude model id to one canonical id.

/// Bedrock cross-region inference-profile prefixes stripped before `anthropic.`.
pub(super) const REGION_PREFIXES: &[&str] =
    &["us", "us-gov", "eu", "apac", "global", "jp", "au", "ca", "uk", "in", "sa", "me", "af", "il"];

/// Model families whose version can be written in either order.
const FAMILIES: &[&str] = &["opus", "sonnet", "haiku", "fable", "mythos"];

/// The canonical form of a model id, as price books key it.
///
/// Steps, in order:
///
/// 1. trim whitespace, ASCII-lowercase, keep only the last `/`-separated segment of a Bedrock ARN, a resource
///    name (`…/models/…`: Vertex) or an id whose last segment is a Claude id (`anthropic/claude-…` gateway
///    ids; `openai/gpt-4o` and `azure/gpt-4o` stay apart), drop `<provider>:` before a Claude id
///    (`anthropic:claude-sonnet-4-5`);
/// 2. after a Claude id, drop a trailing context-size annotation (`claude-opus-4-6[1m]`, `[200k]`) and a Vertex
///    `@20250514` date (eight digits); after a Claude id or one ending in a Bedrock `-vN`, drop a `:` suffix made only of revisions
///    and same-price variants (Bedrock `-v1:0`, `-v1:0:200k`, gateway `:beta` and `:thinking`); any other `:`, `[` or
///    `@` stays in the id (`claude-opus-4-6:fast`, `gemini-1.5-pro@002`), so it is not priced as another model;
/// 3. drop Bedrock region prefixes (`us.`, `eu.`, `apac.`, `global.`, `jp.`, `au.`, …) and `anthropic.`;
/// 4. turn a `.` between digits into `-` (`claude-3.5-sonnet`, `claude-opus-4.6`);
/// 5. for a Claude id, repeatedly drop a `-vN` version suffix, `-latest`, and a trailing `-YYYYMMDD` date
///    (snapshots of one model at one price; elsewhere a `-v2` is another model: `amazon.titan-embed-text-v1`
///    and `-v2` are priced apart);
/// 6. for `claude-<family>-<major>[-<minor>]` and `claude-<major>[-<minor>]-<family>` (family `opus`, `sonnet`,
///    `haiku`, `fable` or `mythos`): drop a `-0` minor (`claude-sonnet-4-0` → `claude-sonnet-4`) and write the
///    version in the name order Anthropic uses for that generation: old order below 4 (`claude-3-5-sonnet`),
///    family first from 4 on (`claude-sonnet-4-5`).
///
/// Anything else is returned as cleaned by steps 1–5 (so a custom id like `My-Finetune` becomes
/// `my-finetune`). Variants with their own prices, such as gateway `…-fast` ids, are deliberately left
/// alone so they stay unknown rather than being priced at standard rates. Never panics, on any input.
pub fn normalize_model_id(id: &str) -> String {
    let mut s = id.trim().to_ascii_lowercase();
    if let Some(i) = s.rfind('/') {
        // A path's segments name the model elsewhere (`openai/gpt-4o`, `azure/gpt-4o`: two prices), except
        // in an ARN or a resource name, and before a Claude id (one price wherever it is served).
        let mut last = s[i + 1..].to_owned();
        strip_provider_prefix(&mut last);
        if s.starts_with("arn:") || s.starts_with("models/") || s.contains("/models/") || is_claude(&last) {
            s.drain(..=i);
        }
    }
    strip_provider_prefix(&mut s);

    if is_claude(&s) {
        // Claude Code's context-size annotation (`[1m]`, `[200k]`): the same model at its own rates (long
        // context is priced from the tokens). Any other bracket may name a variant with its own price.
        if let Some(i) = s.rfind('[')
            && context_annotation(&s[i..])
        {
            s.truncate(i);
        }
        // Only a date: `claude-opus-4-6@fast` may be a variant with its own price, as `:fast` and `[fast]` are.
        // What follows the date is judged below as any `:` suffix is (`@20250929:beta` goes, `@20250929:fast`
        // stays unknown).
        if let Some(i) = s.find('@')
            && s.as_bytes().get(i + 1..i + 9).is_some_and(|date| date.iter().all(u8::is_ascii_digit))
            && matches!(s.as_bytes().get(i + 9), None | Some(b':'))
        {
            s.replace_range(i..i + 9, "");
        }
    }
    // Bedrock's `-v1:0` and `:200k` suffixes (and a gateway's `:beta`, `:thinking`), after a Claude id or a
    // Bedrock-versioned one (`meta.llama3-1-70b-instruct-v1:0`): elsewhere the `:` is part of the id
    // (`ft:gpt-4o-mini-…:acme::A1`, `llama3:8b`), and any other suffix may name a variant with its own price
    // (`:fast`, `:free`): cutting there would give two models one price.
    if let Some(i) = s.find(':')
        && (is_claude(&s[..i]) || has_version_suffix(&s[..i]))
        && s[i + 1..].split(':').all(same_price_suffix)
    {
        s.truncate(i);
    }

    // A `:` suffix left in place keeps the whole id as it is: what follows it is not a snapshot date or alias
    // to drop (`claude-opus-4-6:0-latest` would become `claude-opus-4-6:0`, which a second pass cuts: the id
    // must come out normal the first time).
    let kept_suffix = s.contains(':');
    let s = strip_bedrock_prefix(&s);
    let mut s = dots_between_digits(s);

    while s.starts_with("claude") && !kept_suffix {
        let before = s.len();
        strip_version_suffix(&mut s);
        if s.ends_with("-latest") {
            s.truncate(s.len() - "-latest".len());
        }
        strip_date_suffix(&mut s);
        if s.len() == before {
            break;
        }
    }

    canonical_order(&s).unwrap_or(s)
}

/// A Claude id, after any Bedrock region and `anthropic.` prefix.
fn is_claude(s: &str) -> bool {
    strip_bedrock_prefix(s).starts_with("claude")
}

/// One `:`-separated part of a suffix that names the same model at the same price: a Bedrock revision (`0`),
/// a context-window variant (`200k`), a gateway's `beta` (self-moderated) and `thinking` spellings, and
/// OpenRouter's routing variants (`nitro`, `floor`, `exacto`: the base model, routed differently). Not
/// `online` (web search billed on top), `free` or `extended`, which OpenRouter prices apart.
/// Whether `s` is a `[<digits>k]` or `[<digits>m]` context-size annotation.
fn context_annotation(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else { return false };
    let digits = inner.strip_suffix(['k', 'm']).unwrap_or("");
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn same_price_suffix(part: &str) -> bool {
    let digits = part.strip_suffix('k').unwrap_or(part);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        || matches!(part, "beta" | "thinking" | "nitro" | "floor" | "exacto")
}

/// Drops `<provider>:` prefixes (`anthropic:claude-sonnet-4-5`, `bedrock:us.anthropic.claude-…`: the
/// `provider:model` spelling of pydantic-ai and LangChain) when a Claude id follows, so the `:` cut after it
/// does not leave the provider's name. Anything else keeps its `:` (Bedrock `-v1:0`, fine-tune ids), so a
/// fine-tune is never priced as its base model.
fn strip_provider_prefix(s: &mut String) {
    while let Some((head, tail)) = s.split_once(':') {
        // `ft:` marks a fine-tune (OpenAI's spelling), whose price is not its base model's.
        let provider = !head.is_empty()
            && head != "ft"
            && head.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !(provider && strip_bedrock_prefix(tail).starts_with("claude")) {
            return;
        }
        let cut = head.len() + 1;
        s.drain(..cut);
    }
}

/// The geography a Bedrock inference-profile id of a Claude model routes within: `us` for
/// `us.anthropic.claude-sonnet-4-5-20250929-v1:0` (a geographic, "regional" profile), `global` for
/// `global.anthropic.claude-…` (the global one); also inside an ARN
/// (`arn:aws:bedrock:…:inference-profile/eu.anthropic.claude-…`) and after a `provider:` prefix
/// (`bedrock:us.anthropic.claude-…`). `None` for any other id: a first-party id, a Vertex id, a bare
/// `anthropic.claude-…` foundation-model id (in-region on-demand or provisioned throughput: Bedrock's list
/// prices for those are not the profiles'), an application inference profile (`…/application-inference-profile/<id>`,
/// whose routing its id does not say) or a model other than Claude. ASCII case is ignored; never allocates.
pub(crate) fn bedrock_geography(id: &str) -> Option<&'static str> {
    // Every call is asked this (capture, pricing): a first-party id (`claude-…`) is settled by its first two bytes
    // (no profile, ARN or provider prefix starts `cl`), and any other without a `.` by one pass over them, before
    // any string search.
    let first_party = matches!(id.as_bytes(), [b'c' | b'C', b'l' | b'L', ..]);
    if first_party || !id.as_bytes().contains(&b'.') {
        return None;
    }
    let mut s = id.trim();
    if let Some(i) = s.rfind('/') {
        s = &s[i + 1..];
    }
    // `bedrock:` (pydantic-ai, LangChain): one or more `<provider>:` before the profile id.
    while let Some((head, tail)) = s.split_once(':') {
        let provider = !head.is_empty() && head.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if provider && !head.contains('.') && tail.split_once('.').is_some() {
            s = tail;
        } else {
            break;
        }
    }
    let (label, rest) = s.split_once('.')?;
    let geography = REGION_PREFIXES.iter().copied().find(|p| p.eq_ignore_ascii_case(label))?;
    let model = rest.get(..17).filter(|m| m.eq_ignore_ascii_case("anthropic.claude-"));
    model.map(|_| geography)
}

/// The geography of a Google Vertex AI endpoint host (OpenTelemetry's `server.address`, a `:port` after it
/// ignored): `global` for `aiplatform.googleapis.com`, the region for a regional endpoint (`us-east5` for
/// `us-east5-aiplatform.googleapis.com`); `None` for any other host (multi-region and private endpoints
/// included). ASCII case is ignored.
pub(crate) fn vertex_geography(host: &str) -> Option<&str> {
    const HOST: &str = "aiplatform.googleapis.com";
    let mut host = host.trim();
    // A port after the host (`server.address` should not carry one; some emitters add it).
    if let Some((name, port)) = host.rsplit_once(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        host = name;
    }
    let host = host.trim_end_matches('.');
    let cut = host.len().checked_sub(HOST.len())?;
    if !host.get(cut..)?.eq_ignore_ascii_case(HOST) {
        return None;
    }
    match &host[..cut] {
        "" => Some("global"),
        prefix => {
            let region = prefix.strip_suffix('-')?;
            super::is_regional_geography(Some(region)).then_some(region)
        }
    }
}

/// Strips `<region>.` labels and `anthropic.` from the front.
fn strip_bedrock_prefix(s: &str) -> &str {
    let mut rest = s;
    while let Some((label, tail)) = rest.split_once('.') {
        if REGION_PREFIXES.contains(&label) {
            rest = tail;
        } else {
            break;
        }
    }
    rest.strip_prefix("anthropic.").unwrap_or(rest)
}

/// `claude-3.5-sonnet` → `claude-3-5-sonnet`.
fn dots_between_digits(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.char_indices() {
        let between_digits = c == '.'
            && i > 0
            && bytes.get(i - 1).is_some_and(u8::is_ascii_digit)
            && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        out.push(if between_digits { '-' } else { c });
    }
    out
}

/// Drops a trailing `-v<digits>` (Bedrock `-v1`, Vertex `-v2`).
fn strip_version_suffix(s: &mut String) {
    if has_version_suffix(s) {
        s.truncate(s.rfind("-v").unwrap_or(s.len()));
    }
}

/// Ends in `-vN` (Bedrock's model version).
fn has_version_suffix(s: &str) -> bool {
    s.rfind("-v").is_some_and(|i| {
        let digits = &s[i + 2..];
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Drops a trailing `-YYYYMMDD`.
fn strip_date_suffix(s: &mut String) {
    let b = s.as_bytes();
    if b.len() >= 9 && b[b.len() - 9] == b'-' && b[b.len() - 8..].iter().all(u8::is_ascii_digit) {
        s.truncate(s.len() - 9);
    }
}

/// A version number part: one or two ASCII digits.
fn version_part(s: &str) -> Option<u8> {
    // `05` is no version Anthropic writes: `claude-sonnet-4-05` is not read as 4.5.
    let canonical = s.len() == 1 || (s.len() == 2 && !s.starts_with('0'));
    if canonical && s.bytes().all(|b| b.is_ascii_digit()) { s.parse().ok() } else { None }
}

/// Rewrites a recognised `claude` family/version id in canonical order; `None` when not recognised.
fn canonical_order(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split('-').collect();
    if parts.first() != Some(&"claude") {
        return None;
    }
    let is_family = |p: &str| FAMILIES.contains(&p);
    let (family, major, minor) = match parts[1..] {
        [f, maj] if is_family(f) => (f, version_part(maj)?, None),
        [f, maj, min] if is_family(f) => (f, version_part(maj)?, Some(version_part(min)?)),
        [maj, f] if is_family(f) => (f, version_part(maj)?, None),
        [maj, min, f] if is_family(f) => (f, version_part(maj)?, Some(version_part(min)?)),
        _ => return None,
    };
    let version = match minor {
        None | Some(0) => major.to_string(),
        Some(minor) => format!("{major}-{minor}"),
    };
    Some(if major < 4 { format!("claude-{version}-{family}") } else { format!("claude-{family}-{version}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_id_forms() {
        let cases = [
            ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
            ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
            ("claude-sonnet-4-20250514", "claude-sonnet-4"),
            ("claude-sonnet-4-0", "claude-sonnet-4"),
            ("claude-opus-4-0", "claude-opus-4"),
            ("claude-opus-4-20250514", "claude-opus-4"),
            ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
            ("anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet"),
            ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
            ("eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet"),
            ("apac.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
            ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
            ("jp.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
            ("au.anthropic.claude-opus-4-6-v1", "claude-opus-4-6"),
            ("us-gov.anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku"),
            ("anthropic.claude-3-haiku-20240307-v1:0:200k", "claude-3-haiku"),
            ("claude-opus-4-1@20250805", "claude-opus-4-1"),
            ("claude-sonnet-4@20250514", "claude-sonnet-4"),
            ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
            ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
            ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
            ("claude-3-opus-20240229", "claude-3-opus"),
            ("claude-haiku-4-5", "claude-haiku-4-5"),
            ("Claude-Sonnet-4-5", "claude-sonnet-4-5"),
            ("  claude-sonnet-4-5-20250929  ", "claude-sonnet-4-5"),
            ("claude-opus-4-6[1m]", "claude-opus-4-6"),
            ("anthropic/claude-opus-4.6", "claude-opus-4-6"),
            ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),
            ("projects/p/locations/global/publishers/anthropic/models/claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
            (
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-1-20250805-v1:0",
                "claude-opus-4-1",
            ),
            ("claude-opus-5", "claude-opus-5"),
            ("claude-opus-5-5", "claude-opus-5-5"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_model_id(input), want, "{input}");
        }
    }

    #[test]
    fn both_name_orders() {
        assert_eq!(normalize_model_id("claude-sonnet-3-7"), "claude-3-7-sonnet");
        assert_eq!(normalize_model_id("claude-4-sonnet"), "claude-sonnet-4");
        assert_eq!(normalize_model_id("claude-4-5-haiku"), "claude-haiku-4-5");
        assert_eq!(normalize_model_id("claude-3-0-opus"), "claude-3-opus");
    }

    #[test]
    fn other_ids_are_only_cleaned() {
        assert_eq!(normalize_model_id("gpt-4o"), "gpt-4o");
        assert_eq!(normalize_model_id("gpt-4o-2024-08-06"), "gpt-4o-2024-08-06");
        assert_eq!(normalize_model_id("My-Finetune"), "my-finetune");
        assert_eq!(normalize_model_id("claude-sonnet-9"), "claude-sonnet-9");
        assert_eq!(normalize_model_id("claude-opus-4-6-fast"), "claude-opus-4-6-fast");
        assert_eq!(normalize_model_id("claude-2.1"), "claude-2-1");
        // Versions and dates are kept on other ids: two versions are two models. Bedrock's `:0` revision goes.
        assert_eq!(normalize_model_id("amazon.titan-embed-text-v2:0"), "amazon.titan-embed-text-v2");
        assert_eq!(normalize_model_id("amazon.titan-embed-text-v1"), "amazon.titan-embed-text-v1");
        assert_eq!(normalize_model_id("us.meta.llama3-1-70b-instruct-v1:0"), "meta.llama3-1-70b-instruct-v1");
        assert_eq!(normalize_model_id("my-model-20250601"), "my-model-20250601");
        assert_eq!(normalize_model_id(""), "");
    }

    #[test]
    fn other_ids_keep_what_may_name_another_model() {
        // Paths, `[…]`, `@…` and `:` suffixes were cut from every id: `acme-model@001` priced `acme-model@002`,
        // `openai/gpt-4o` and `azure/gpt-4o` were one model, `claude-opus-4-6:fast` was billed at standard rates.
        assert_eq!(normalize_model_id("acme-model@001"), "acme-model@001");
        assert_eq!(normalize_model_id("openai/gpt-4o"), "openai/gpt-4o");
        assert_eq!(normalize_model_id("my-model[eu]"), "my-model[eu]");
        assert_eq!(normalize_model_id("claude-opus-4-6:fast"), "claude-opus-4-6:fast");
        // After a Claude id an `@` is cut only before a Vertex date: `@fast` was priced at standard rates, and
        // `@x:fast` lost its `:fast` with it. A two-digit version with a leading zero is no Claude version.
        assert_eq!(normalize_model_id("claude-opus-4-6@fast"), "claude-opus-4-6@fast");
        assert_eq!(normalize_model_id("claude-sonnet-4-5@x:fast"), "claude-sonnet-4-5@x:fast");
        assert_eq!(normalize_model_id("claude-opus-4-1@2025080"), "claude-opus-4-1@2025080");
        assert_eq!(normalize_model_id("claude-opus-4-1@20250805"), "claude-opus-4-1");
        assert_eq!(normalize_model_id("claude-sonnet-4-5@20250929:beta"), "claude-sonnet-4-5");
        assert_eq!(normalize_model_id("claude-sonnet-4-5@20250929:fast"), "claude-sonnet-4-5:fast");
        assert_eq!(normalize_model_id("claude-opus-4-1@202508051"), "claude-opus-4-1@202508051");
        assert_eq!(normalize_model_id("claude-sonnet-4-05"), "claude-sonnet-4-05");
        assert_eq!(normalize_model_id("claude-opus-04"), "claude-opus-04");
        // A bracket after a Claude id is cut only when it is a context size: `[fast]` was priced as the model.
        assert_eq!(normalize_model_id("claude-opus-4-6[fast]"), "claude-opus-4-6[fast]");
        assert_eq!(normalize_model_id("claude-opus-4-6[1m"), "claude-opus-4-6[1m");
        assert_eq!(normalize_model_id("claude-opus-4-6[m]"), "claude-opus-4-6[m]");
        assert_eq!(normalize_model_id("claude-sonnet-4-5[200k]"), "claude-sonnet-4-5");
        assert_eq!(normalize_model_id("claude-sonnet-4-5-20250929[1M]"), "claude-sonnet-4-5");
        // What names the same model at the same price still goes.
        assert_eq!(normalize_model_id("anthropic/claude-3.7-sonnet:thinking"), "claude-3-7-sonnet");
        assert_eq!(normalize_model_id("anthropic/claude-sonnet-4.5:beta"), "claude-sonnet-4-5");
        assert_eq!(normalize_model_id("anthropic/claude-sonnet-4:nitro"), "claude-sonnet-4");
        assert_eq!(normalize_model_id("anthropic/claude-sonnet-4:floor"), "claude-sonnet-4");
        assert_eq!(normalize_model_id("anthropic/claude-3.7-sonnet:online"), "claude-3-7-sonnet:online");
        // The Gemini API's resource name.
        assert_eq!(normalize_model_id("models/gemini-2.0-flash"), "gemini-2-0-flash");
        assert_eq!(
            normalize_model_id("arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-1-70b-instruct-v1:0"),
            "meta.llama3-1-70b-instruct-v1"
        );
        assert_eq!(normalize_model_id("projects/p/locations/l/publishers/google/models/gemini-2.0"), "gemini-2-0");
    }

    #[test]
    fn never_panics_and_a_normalized_id_stays_as_it_is() {
        // Normalizing is idempotent: an id it gave back is already normal (what the price book keys hold).
        let check = |s: &str| {
            let once = normalize_model_id(s);
            assert_eq!(normalize_model_id(&once), once, "{s:?}");
        };
        check(&"é-".repeat(5_000));
        check(&"claude-".repeat(2_000));
        for s in [
            "@",
            ":",
            "/",
            "[",
            "]",
            "-v",
            "-",
            ".",
            "é.1",
            "1.é",
            "claude-",
            "claude--",
            "-20250101",
            "anthropic.",
            "us.",
            "us.us.us.",
            "🦀@🦀:🦀",
            "claude-sonnet-4-5-v",
            "claude-é-sonnet",
            "\u{0}",
            "-v1:0",
            "[1m]",
            "claude-opus-4-6:0-latest",
            "claude-sonnet-4-5:beta-20250929",
            "models/gemini-2.0-flash",
        ] {
            check(s);
        }
    }
}
