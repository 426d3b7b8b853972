"""The results stage: delivery attempts from the results topic into ClickHouse, and queries over them."""
