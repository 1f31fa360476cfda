using EptFuzz.Targets.Vmx.Image;

namespace EptFuzz.Targets.Vmx.Runner;

/// <summary>An emulator that boots a disk image once and returns what the kernel printed.</summary>
public interface IEmulator
{
    /// <summary>The target name this emulator serves ("bochs", "kvm", "qemu-tcg").</summary>
    string Name { get; }

    /// <summary>Null when the emulator can run here; otherwise "unavailable: " and why not (a missing package, no nested VMX).</summary>
    string? Unavailable();

    /// <summary>Boots once. Throws <see cref="EptFuzz.Contract.TargetFailureException"/> only when the emulator cannot be started at all.</summary>
    EmulatorOutcome Boot(DiskImage image, string workDirectory);
}

/// <summary>The console output of one boot plus how the process ended.</summary>
public sealed record EmulatorOutcome(string Console, ProcessResult Process);
