"""What the app does with an event: verify, record, install, hand off. Uses bitrix/ and store/, never Flask."""
