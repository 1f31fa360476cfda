using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Runner;

namespace EptFuzz.Targets.Vmx;

/// <summary>
/// The KVM back end: qemu-system-x86_64 -accel kvm -cpu host,+vmx, for hosts with nested VMX
/// (kvm_intel nested=1). Elsewhere <see cref="ITarget.Open"/> throws a
/// <see cref="TargetFailureException"/> whose message starts with "unavailable:".
/// </summary>
public sealed class KvmTarget(QemuOptions options) : VmxTarget(new QemuEmulator(options with { Kvm = true }), options with { Kvm = true })
{
    public KvmTarget()
        : this(new QemuOptions())
    {
    }

    private protected override string Describe() => "kvm (nested VMX)";
}
