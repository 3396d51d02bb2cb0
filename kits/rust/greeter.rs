//! greeter: a plugvisor plugin in Rust, with the kit beside it (plugvisor.rs), built with
//! `rustc --target wasm32-unknown-unknown --crate-type cdylib` on this file.
//! Greets parameters.name with the manifest's config.greeting (default "Hello"), logs a line,
//! and fails politely without a name.

mod plugvisor;
use plugvisor::{config, log, quote, Json, Meta, LOG_INFO};

/// The plugin's name, version and description, answered by the `meta` export (`plugvisor status`
/// shows the version).
const META: Meta = Meta { name: "greeter", version: "1.0.0", description: "Greets parameters.name" };

/// Answers one call: the "data" JSON text, or an error message.
fn handle(context: &Json) -> Result<String, String> {
    let name = match context.get("parameters").and_then(|p| p.get("name")).and_then(Json::as_str) {
        Some(name) if !name.is_empty() => name,
        _ => return Err("pass a \"name\" parameter".to_string()),
    };
    let request_id = context.get("request_id").and_then(Json::as_str).unwrap_or("");
    let greeting = config("greeting").unwrap_or_else(|| "Hello".to_string());
    log(LOG_INFO, &format!("greeting {} for request {}", name, request_id));
    Ok(format!(
        "{{\"message\":{},\"request_id\":{}}}",
        quote(&format!("{}, {}!", greeting, name)),
        quote(request_id)
    ))
}
