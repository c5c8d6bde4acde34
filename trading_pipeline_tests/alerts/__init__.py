"""Alert delivery against receivers on 127.0.0.1: HTTP webhooks, SMTP, the run-failure sensor."""
