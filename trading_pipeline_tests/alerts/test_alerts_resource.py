"""Settings -> AlertsResource, and the run-failure sensor sending through it to a webhook."""

import dagster as dg
import pytest

from trading_pipeline.definitions import build_definitions
from trading_pipeline.defs.environment import resources_for
from trading_pipeline.settings import SettingsError, TradingSettings
from trading_pipeline_tests.alerts.receivers import HttpReceiver, LoopbackSmtp, SmtpSink

TOKEN_PATH = "/hooks/Tk-abcdef-123456"
SECRET_VARIABLES = ("TRADING_ALERT_WEBHOOK_URL", "TRADING_ALERT_SMTP_PASSWORD")


@pytest.fixture(autouse=True)
def no_alert_variables(monkeypatch):
    for name in SECRET_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("values", "problem"), [
    (dict(alert_smtp_host="smtp.desk.example"), "needs TRADING_ALERT_EMAIL_FROM"),
    (dict(alert_smtp_host="smtp.desk.example", alert_email_from="a@desk.example"), "needs TRADING_ALERT_EMAIL_TO"),
    (dict(alert_smtp_host="smtp.desk.example", alert_email_from="a@desk.example", alert_email_to="ops"),
     "TRADING_ALERT_EMAIL_TO: 'ops' is not an e-mail address"),
    (dict(alert_smtp_user="desk"), "both TRADING_ALERT_SMTP_USER and TRADING_ALERT_SMTP_PASSWORD"),
    (dict(alert_min_severity="loud"), "TRADING_ALERT_MIN_SEVERITY=loud: Input should be 'info', 'warning' or"),
])
def test_alert_settings_that_cannot_work_fail_at_load(values, problem, tmp_path):
    with pytest.raises(SettingsError, match=problem):
        TradingSettings(_env_file=None, home=tmp_path, **values)


def test_secrets_reach_the_resource_as_env_vars_and_stay_masked(monkeypatch, tmp_path):
    monkeypatch.setenv("TRADING_ALERT_WEBHOOK_URL", "https://hooks.example.com" + TOKEN_PATH)
    monkeypatch.setenv("TRADING_ALERT_SMTP_PASSWORD", "pw-Secret-42")
    settings = TradingSettings(_env_file=None, home=tmp_path, alert_smtp_host="smtp.desk.example",
                               alert_smtp_user="desk", alert_email_from="a@desk.example",
                               alert_email_to="ops@desk.example, risk@desk.example")
    alerts = resources_for(settings)["alerts"]
    # the UI shows the variable's name, never its value
    assert alerts.webhook_url == dg.EnvVar("TRADING_ALERT_WEBHOOK_URL")
    assert alerts.smtp_password == dg.EnvVar("TRADING_ALERT_SMTP_PASSWORD")
    assert alerts.email_to == ["ops@desk.example", "risk@desk.example"]
    for shown in (repr(settings), repr(alerts), str(alerts)):
        assert "Tk-abcdef" not in shown and "pw-Secret-42" not in shown


def test_the_resource_stamps_strategy_and_environment_and_sends_by_email(tmp_path):
    from trading_pipeline.alerts import Alert, AlertKind, Severity
    from trading_pipeline.defs.resources import AlertsResource

    sink = SmtpSink()
    with LoopbackSmtp(sink) as smtp:
        alerts = AlertsResource(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False,
                                email_from="a@desk.example", email_to=["ops@desk.example"],
                                strategy="daily_ml", trading_env="paper")
        report = alerts.send(Alert(AlertKind.RECONCILIATION_BREAK, Severity.WARNING, "2 breaks", {"breaks": 2}))
    assert report.delivered == ("log", "email")
    assert (report.alert.strategy, report.alert.environment) == ("daily_ml", "paper")
    assert b"environment: paper" in sink.mail[0].content


def test_a_resource_that_cannot_work_fails_when_dagster_starts_it():
    from trading_pipeline.defs.resources import AlertsResource

    misconfigured = AlertsResource(smtp_host="smtp.desk.example", email_from="a@desk.example")
    with pytest.raises(dg.DagsterResourceFunctionError) as failed:
        with dg.build_resources({"alerts": misconfigured}):
            pass
    assert "at least one recipient" in str(failed.value.__cause__)


def failing_job():
    @dg.op
    def place_orders():
        raise RuntimeError("broker refused the session")

    @dg.job
    def flaky_job():
        place_orders()

    return flaky_job


def test_run_failure_sensor_sends_the_failed_run_to_the_webhook(monkeypatch, tmp_path):
    with HttpReceiver() as receiver:
        monkeypatch.setenv("TRADING_ALERT_WEBHOOK_URL", receiver.url(TOKEN_PATH))
        settings = TradingSettings(_env_file=None, home=tmp_path, env="local")
        defs = build_definitions(settings)
        sensor = defs.resolve_sensor_def("run_failure_alert_sensor")
        with dg.instance_for_test() as instance:
            # the first tick only sets the cursor: a run status sensor reports what happens after it
            with dg.build_sensor_context(instance=instance, resources=defs.resources) as context:
                first = sensor.evaluate_tick(context)
            result = failing_job().execute_in_process(instance=instance, raise_on_error=False,
                                                      tags={"dagster/partition": "2024-03-27"})
            assert not result.success
            with dg.build_sensor_context(instance=instance, resources=defs.resources,
                                         cursor=first.cursor) as context:
                tick = sensor.evaluate_tick(context)
    assert tick.cursor != first.cursor  # the failure was seen and handled
    (request,) = receiver.received
    assert request.path == TOKEN_PATH
    body = request.body
    assert (body["kind"], body["severity"]) == ("run_failure", "warning")
    assert body["title"] == "run of flaky_job failed at place_orders"
    assert body["details"]["run_id"] == result.run_id and body["details"]["job"] == "flaky_job"
    assert body["details"]["error"] == "RuntimeError: broker refused the session"
    assert body["details"]["failed_steps"] == "place_orders"
    assert (body["session"], body["environment"], body["strategy"]) == ("2024-03-27", "local", "daily_ml")
