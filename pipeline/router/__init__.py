"""The router: matches each event against the subscriptions and writes a delivery task per match."""
