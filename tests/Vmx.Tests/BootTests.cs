using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Image;
using EptFuzz.Targets.Vmx.Runner;

namespace EptFuzz.Vmx.Tests;

/// <summary>Boots the real image. Each boot takes well under a second in Bochs and TCG.</summary>
public sealed class BootTests
{
    [BochsFact]
    public void Bochs_BootsToVmxAndReportsTheCapabilityMsrs()
    {
        var report = OracleBoot.Run(new BochsEmulator(new BochsOptions()), DiskImage.Build(new ScriptBuilder()));
        Assert.True(report.Ended);
        Assert.Null(report.NoVmx);
        Assert.True(report.VmxReady);
        // corei7_skylake_x: EPT allowed in the secondary controls, EPT capabilities present.
        Assert.NotEqual(0UL, report.Msrs[0x48B] & (1UL << 33));
        Assert.NotEqual(0UL, report.Msrs[0x48C] & (1UL << 6));
    }

    [BochsFact]
    public void Bochs_GuestThatSpins_IsStoppedByThePreemptionTimer()
    {
        // A hand-made script: an EPT of its own (root 0x600000) whose PML4 slot 1 reaches the
        // window, identity guest paging there, and a guest that runs "jmp $" instead of a probe stub.
        const ulong root = 0x600000;
        const ulong window = 1UL << 39;
        var script = new ScriptBuilder();
        script.Add(ScriptOp.Zero, root, 0, 1);
        script.Write(root + 8, KernelLayout.WindowEptPdpt | 7);
        script.Write(KernelLayout.WindowEptPdpt, KernelLayout.WindowEptPd | 7);
        script.Write(KernelLayout.WindowEptPd, KernelLayout.Window | 0x80 | 0x30 | 7);
        script.Write(KernelLayout.Window + 0x100, 0xFEEB);                  // jmp $
        script.Write(KernelLayout.Window + KernelLayout.WindowGuestPml4 + 8, (window + 0x3000) | 0x27);
        script.Write(KernelLayout.Window + 0x3000, window | 0xE7);
        script.Add(ScriptOp.GuestPaging, window + KernelLayout.WindowGuestPml4, 0, 0x500, flags: 1);
        script.Add(ScriptOp.SetEptp, root | 0x1E);
        script.Add(ScriptOp.Invept);
        script.Add(ScriptOp.Probe, 7, window + 0x100, 0);
        var report = OracleBoot.Run(new BochsEmulator(new BochsOptions()), DiskImage.Build(script));
        Assert.True(report.Ended);
        Assert.Equal(52, report.Exits[7].BasicReason); // VMX-preemption timer expired
        Assert.Equal(window + 0x100, report.Exits[7].GuestRip);
    }

    [QemuFact]
    public void QemuTcg_BootsAndReportsNoVmx()
    {
        var report = OracleBoot.Run(new QemuEmulator(new QemuOptions { Kvm = false }), DiskImage.Build(new ScriptBuilder()));
        Assert.True(report.Ended);
        Assert.Equal("NOVMX", report.NoVmx);
        Assert.False(report.VmxReady);
    }

    [Fact]
    public void NestedVmx_WithoutVmxFlag_IsUnavailable()
    {
        string root = Directory.CreateTempSubdirectory("eptfuzz-root-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "dev"));
            Directory.CreateDirectory(Path.Combine(root, "proc"));
            File.WriteAllText(Path.Combine(root, "dev/kvm"), string.Empty);
            File.WriteAllText(Path.Combine(root, "proc/cpuinfo"), "flags\t\t: fpu sse2 hypervisor\n");
            // A stand-in executable: the host checks below must not depend on QEMU being installed.
            string qemu = Path.Combine(root, "qemu-system-x86_64");
            File.WriteAllText(qemu, string.Empty);
            var emulator = new QemuEmulator(new QemuOptions { HostRoot = root, Executable = qemu });
            Assert.StartsWith("unavailable: the host CPU has no vmx flag", emulator.Unavailable());
            var failure = Assert.Throws<TargetFailureException>(() => OracleBoot.Run(emulator, DiskImage.Build(new ScriptBuilder())));
            Assert.Contains("unavailable", failure.Message);

            File.WriteAllText(Path.Combine(root, "proc/cpuinfo"), "flags\t\t: fpu vmx sse2\n");
            Directory.CreateDirectory(Path.Combine(root, "sys/module/kvm_intel/parameters"));
            File.WriteAllText(Path.Combine(root, "sys/module/kvm_intel/parameters/nested"), "N\n");
            Assert.Equal("unavailable: kvm_intel nested=N (reload kvm_intel with nested=1)", emulator.Unavailable());
            File.WriteAllText(Path.Combine(root, "sys/module/kvm_intel/parameters/nested"), "Y\n");
            Assert.Null(emulator.Unavailable());
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void KvmTarget_AnswersUnavailableWithoutNestedVmx_OrReachesVmx()
    {
        var target = new EptFuzz.Targets.Vmx.KvmTarget();
        if (new QemuEmulator(new QemuOptions { Kvm = true }).Unavailable() is string reason)
        {
            // This machine (no QEMU, or no VT-x): the answer comes at once, without starting QEMU.
            var failure = Assert.Throws<TargetFailureException>(() => target.Open(CpuCapabilities.Default));
            Assert.Equal($"kvm: {reason}", failure.Message);
        }
        else
        {
            Assert.True(target.Processor().Capabilities.Page2M);
        }
    }

    [Fact]
    public void MissingEmulator_NamesThePackage()
    {
        var emulator = new BochsEmulator(new BochsOptions { Executable = "/nonexistent/bochs" });
        var failure = Assert.Throws<TargetFailureException>(() => OracleBoot.Run(emulator, DiskImage.Build(new ScriptBuilder())));
        Assert.Contains("install the Debian packages bochs, bochs-sdl", failure.Message);
    }

    [Fact]
    public void HungEmulator_IsKilledRetriedOnceAndReported()
    {
        using var fake = new FakeBochs("sleep 30");
        var emulator = new BochsEmulator(fake.Options with { Timeout = TimeSpan.FromMilliseconds(300) });
        var failure = Assert.Throws<TargetFailureException>(() => OracleBoot.Run(emulator, DiskImage.Build(new ScriptBuilder())));
        Assert.Contains("hung", failure.Message);
        Assert.Contains("failed twice", failure.Message);
        Assert.Equal(2, fake.Starts);
    }

    [Fact]
    public void SilentEmulator_WithoutEndMarker_IsAnInfrastructureFailure()
    {
        using var fake = new FakeBochs("echo 'HELLO eptfuzz-vmx 1'; echo 'VMX ready'");
        var failure = Assert.Throws<TargetFailureException>(() => OracleBoot.Run(new BochsEmulator(fake.Options), DiskImage.Build(new ScriptBuilder())));
        Assert.Contains("no END marker", failure.Message);
    }

    [Fact]
    public void BochsWithoutSdl_NamesTheBochsSdlPackage()
    {
        using var fake = new FakeBochs("echo \"[      ] bochsrc:5: display library 'sdl2' not available\" >&2; exit 1");
        var failure = Assert.Throws<TargetFailureException>(() => OracleBoot.Run(new BochsEmulator(fake.Options), DiskImage.Build(new ScriptBuilder())));
        Assert.Contains("install the Debian package bochs-sdl", failure.Message);
    }

    /// <summary>A shell script in place of bochs (and empty BIOS files), counting how often it is started.</summary>
    private sealed class FakeBochs : IDisposable
    {
        private readonly string dir = Directory.CreateTempSubdirectory("eptfuzz-fake-").FullName;

        public FakeBochs(string body)
        {
            string script = Path.Combine(dir, "bochs");
            File.WriteAllText(script, $"#!/bin/sh\necho start >> {Path.Combine(dir, "starts")}\n{body}\n");
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.UserWrite);
            }
            File.WriteAllText(Path.Combine(dir, "bios"), string.Empty);
            Options = new BochsOptions { Executable = script, BiosImage = Path.Combine(dir, "bios"), VgaBiosImage = Path.Combine(dir, "bios"), Timeout = TimeSpan.FromSeconds(20) };
        }

        public BochsOptions Options { get; }

        public int Starts => File.Exists(Path.Combine(dir, "starts")) ? File.ReadAllLines(Path.Combine(dir, "starts")).Length : 0;

        public void Dispose() => Directory.Delete(dir, recursive: true);
    }
}
