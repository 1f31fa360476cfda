namespace EptFuzz.External.Tests;

/// <summary>
/// A test that builds native code: skipped with the reason where the machine has no C compiler,
/// unless EPTFUZZ_REQUIRE_NATIVE=1 (CI sets it after installing build-essential), where a missing
/// compiler fails instead.
/// </summary>
internal sealed class SkippableNativeFactAttribute : FactAttribute
{
    public SkippableNativeFactAttribute()
    {
        if ((Shell.CCompiler() is null || Shell.Find("make") is null) && Environment.GetEnvironmentVariable("EPTFUZZ_REQUIRE_NATIVE") != "1")
        {
            Skip = "no C compiler (cc) or make on PATH: install build-essential, or set EPTFUZZ_REQUIRE_NATIVE=1 to fail instead";
        }
    }
}
