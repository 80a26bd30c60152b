//! The committed `openapi/openapi.json` is the spec the API serves: a change to the routes
//! must come with the regenerated file.

#[test]
fn committed_spec_matches_the_code() {
    let served = fluxus_api::openapi().spec();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        served.trim() == committed.trim(),
        "openapi/openapi.json is out of date; regenerate it with\n  \
         cargo run -q -p fluxus-api -- --print-openapi > openapi/openapi.json"
    );
}
