"""Billing: payment plans, royalty reports, invoices, payments (Stripe and bank transfer), refunds and the ledger."""
