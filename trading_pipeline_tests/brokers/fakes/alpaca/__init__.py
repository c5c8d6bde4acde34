"""A stateful fake of Alpaca's trading REST API (v2) on 127.0.0.1, spoken to by the real
alpaca-py client. Standard library only.

It keeps orders, executions (FILL account activities), positions and cash, answers in
Alpaca's shapes (numbers as JSON strings, RFC 3339 times, {"code", "message"} errors), and
lets a test steer it: move prices, fill working orders, change a position by hand, forget
an order, answer 401/403/422/429/500 on demand, stall answers, or lose the answer to an
order it has accepted. It behaves like a cash account: no shorting, buying power = cash
less what open buy orders may cost.
"""

from trading_pipeline_tests.brokers.fakes.alpaca.payloads import DEFAULT_PRICES, FakeOrder, RecordedRequest
from trading_pipeline_tests.brokers.fakes.alpaca.server import FakeAlpacaServer
from trading_pipeline_tests.brokers.fakes.alpaca.state import FakeAlpaca

__all__ = ["DEFAULT_PRICES", "FakeAlpaca", "FakeAlpacaServer", "FakeOrder", "RecordedRequest"]
