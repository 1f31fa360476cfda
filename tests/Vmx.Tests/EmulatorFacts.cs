using EptFuzz.Targets.Vmx.Runner;

namespace EptFuzz.Vmx.Tests;

/// <summary>
/// A test that boots Bochs; skipped (with the reason) only where the bochs binary is absent, unless
/// EPTFUZZ_REQUIRE_ORACLE=1 (set by CI), where a missing emulator must fail the test instead.
/// </summary>
public sealed class BochsFactAttribute : FactAttribute
{
    public BochsFactAttribute()
    {
        if (!ProcessRunner.IsOnPath("bochs") && !OracleRequired.Value)
        {
            Skip = "bochs is not installed here (Debian packages bochs, bochs-sdl, bochsbios, vgabios)";
        }
    }
}

/// <summary>A test that boots QEMU under TCG; skipped only where qemu-system-x86_64 is absent (and CI does not require it).</summary>
public sealed class QemuFactAttribute : FactAttribute
{
    public QemuFactAttribute()
    {
        if (!ProcessRunner.IsOnPath("qemu-system-x86_64") && !OracleRequired.Value)
        {
            Skip = "qemu-system-x86_64 is not installed here (Debian package qemu-system-x86)";
        }
    }
}

internal static class OracleRequired
{
    public static bool Value => Environment.GetEnvironmentVariable("EPTFUZZ_REQUIRE_ORACLE") == "1";
}
