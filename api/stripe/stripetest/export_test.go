package stripetest

// SharedExpected exposes whether mocks are shared on this platform.
const SharedExpected = canTieToParent
