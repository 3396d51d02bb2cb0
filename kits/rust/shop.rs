//! shop: a plugvisor plugin in Rust that asks the program embedding plugvisor for a price, through
//! its `kv_get` host function (Examples/Embedding provides one; the manifest grants it with
//! `host_functions: [kv_get]`). Built as greeter.rs is, with the kit beside it.

mod plugvisor;
use plugvisor::{host_call, quote, Json, Meta};

const META: Meta = Meta { name: "shop", version: "1.0.0", description: "Prices parameters.item from the host's store" };

/// Answers `{"item", "price"}` with the host's value for the item, or fails with the host's reason.
fn handle(context: &Json) -> Result<String, String> {
    let item = match context.get("parameters").and_then(|p| p.get("item")).and_then(Json::as_str) {
        Some(item) if !item.is_empty() => item,
        _ => return Err("pass an \"item\" parameter".to_string()),
    };
    let price = host_call("kv_get", item.as_bytes()).map_err(|reason| format!("no price for {}: {}", item, reason))?;
    Ok(format!("{{\"item\":{},\"price\":{}}}", quote(item), quote(&String::from_utf8_lossy(&price))))
}
