//! Templates that would leave something out of the key, or let two values
//! collide, are refused at the template or at the argument.

#[larder::cached(key = "{tenant}-{doc}")]
async fn separator_a_value_can_forge(tenant: String, doc: String) -> String {
    format!("{tenant}{doc}")
}

#[larder::cached(key = "{tenant}{doc}")]
async fn no_separator(tenant: String, doc: String) -> String {
    format!("{tenant}{doc}")
}

#[larder::cached(key = "{user}")]
async fn unknown_argument(user_id: u64) -> u64 {
    user_id
}

#[larder::cached(key = "{user_id}:{trace}")]
async fn skipped_but_placed(user_id: u64, #[larder(skip)] trace: String) -> u64 {
    let _ = trace;
    user_id
}

#[larder::cached(key = "{user_id}:{ttl}")]
async fn ttl_placed(user_id: u64, ttl: u64) -> u64 {
    user_id + ttl
}

#[larder::cached(key = "{user_id:?}")]
async fn format_spec(user_id: u64) -> u64 {
    user_id
}

#[larder::cached(key = "user:*:{user_id}")]
async fn glob_in_template(user_id: u64) -> u64 {
    user_id
}

#[larder::cached(key = "{self}:{user_id}")]
async fn self_without_receiver(user_id: u64) -> u64 {
    user_id
}

fn main() {}
