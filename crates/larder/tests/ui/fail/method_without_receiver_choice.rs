struct Invoices {
    tenant: String,
}

impl Invoices {
    #[larder::cached(namespace = "invoice_total")]
    async fn invoice_total(&self, invoice: u64) -> String {
        format!("{}: {invoice}", self.tenant)
    }
}

fn main() {}
