using System.Globalization;
using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Image;

namespace EptFuzz.Targets.Vmx.Runner;

/// <summary>Options of the QEMU back ends.</summary>
public sealed record QemuOptions
{
    /// <summary>The QEMU executable (Debian package qemu-system-x86).</summary>
    public string Executable { get; init; } = "qemu-system-x86_64";
    /// <summary>True: -accel kvm -cpu host,+vmx (the kvm target). False: TCG, which has no VMX (plumbing tests).</summary>
    public bool Kvm { get; init; } = true;
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Root of the file system consulted for /dev/kvm, /proc/cpuinfo and the kvm_intel parameters (tests point it elsewhere).</summary>
    public string HostRoot { get; init; } = "/";
}

/// <summary>
/// QEMU booting the same disk image: port 0xE9 through isa-debugcon into a file, the kernel's exit
/// through isa-debug-exit (status (code &lt;&lt; 1) | 1), and --no-reboot so a triple fault ends
/// the process with status 0, which no kernel exit can produce.
/// </summary>
public sealed class QemuEmulator(QemuOptions options) : IEmulator
{
    public QemuOptions Options { get; } = options;

    public string Name => Options.Kvm ? "kvm" : "qemu-tcg";

    public string? Unavailable()
    {
        if (!ProcessRunner.IsOnPath(Options.Executable))
        {
            return $"unavailable: {Options.Executable} not found: install the Debian package qemu-system-x86";
        }

        return Options.Kvm ? NestedVmx.Unavailable(Options.HostRoot) : null;
    }

    public EmulatorOutcome Boot(DiskImage image, string workDirectory)
    {
        string disk = Path.Combine(workDirectory, "disk.img");
        string console = Path.Combine(workDirectory, "debugcon.out");
        File.WriteAllBytes(disk, image.Bytes);
        string[] accel = Options.Kvm ? ["-accel", "kvm", "-cpu", "host,+vmx"] : ["-accel", "tcg", "-cpu", "max"];
        var result = ProcessRunner.Run(
            Options.Executable,
            [
                .. accel,
                "-M", "pc", "-m", string.Create(CultureInfo.InvariantCulture, $"{image.RamMegabytes}"),
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-drive", $"file={disk},format=raw,if=ide",
                "-debugcon", $"file:{console}",
                "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            ],
            workDirectory,
            Options.Timeout) ?? throw new TargetFailureException(Name, $"unavailable: {Options.Executable} not found: install the Debian package qemu-system-x86");
        string text = File.Exists(console) ? File.ReadAllText(console) : string.Empty;
        return new EmulatorOutcome(text, result);
    }
}
