"""The directory: employees, groups, phone numbers (DIDs) and SIP trunks of each account."""
