package soak

const helperEnv = "XHRSSE_SOAK_HELPER"

func streamsHelper() int { return 2 }
