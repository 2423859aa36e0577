"""SMS providers: AWS SNS (boto3) or Twilio (its HTTP API). Each returns the provider's
message id, which goes into the delivery log."""

from __future__ import annotations

import asyncio
from typing import Protocol

import boto3
import httpx

from courier.common.settings import Settings


class SmsSender(Protocol):
    name: str

    async def send(self, phone: str, text: str) -> str: ...


class SnsSms:
    name = "sns"

    def __init__(self, region: str, endpoint_url: str | None = None) -> None:
        self.client = boto3.client("sns", region_name=region, endpoint_url=endpoint_url)

    async def send(self, phone: str, text: str) -> str:
        response = await asyncio.to_thread(
            self.client.publish,
            PhoneNumber=phone,
            Message=text,
            MessageAttributes={
                # Pages must not be dropped as promotional traffic.
                "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}
            },
        )
        return str(response["MessageId"])


class TwilioSms:
    name = "twilio"

    def __init__(self, base_url: str, account_sid: str, auth_token: str, sender: str) -> None:
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.client = httpx.AsyncClient(auth=(account_sid, auth_token), timeout=15)
        self.sender = sender

    async def send(self, phone: str, text: str) -> str:
        response = await self.client.post(
            self.url, data={"To": phone, "From": self.sender, "Body": text}
        )
        response.raise_for_status()
        return str(response.json()["sid"])


class NoSms:
    """For a stack without an SMS provider: every page fails loudly into the delivery log."""

    name = "none"

    async def send(self, phone: str, text: str) -> str:
        raise RuntimeError("no SMS provider configured (COURIER_SMS_PROVIDER)")


def sms_sender(settings: Settings) -> SmsSender:
    if settings.sms_provider == "sns":
        return SnsSms(settings.sns_region, settings.sns_endpoint_url)
    if settings.sms_provider == "twilio":
        sid, token, sender = (
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_from,
        )
        if not (sid and token and sender):
            raise ValueError("Twilio needs COURIER_TWILIO_ACCOUNT_SID, _AUTH_TOKEN and _FROM")
        return TwilioSms(settings.twilio_base_url, sid, token.get_secret_value(), sender)
    return NoSms()
