using EptFuzz.Targets.Vmx.Runner;

namespace EptFuzz.Vmx.Tests;

/// <summary>A test that boots Bochs; skipped (with the reason) only where the bochs binary is absent. CI installs it.</summary>
public sealed class BochsFactAttribute : FactAttribute
{
    public BochsFactAttribute()
    {
        if (!ProcessRunner.IsOnPath("bochs"))
        {
            Skip = "bochs is not installed here (Debian packages bochs, bochs-sdl, bochsbios, vgabios)";
        }
    }
}

/// <summary>A test that boots QEMU under TCG; skipped only where qemu-system-x86_64 is absent.</summary>
public sealed class QemuFactAttribute : FactAttribute
{
    public QemuFactAttribute()
    {
        if (!ProcessRunner.IsOnPath("qemu-system-x86_64"))
        {
            Skip = "qemu-system-x86_64 is not installed here (Debian package qemu-system-x86)";
        }
    }
}
