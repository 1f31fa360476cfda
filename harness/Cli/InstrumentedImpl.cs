using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using EptFuzz.Contract;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;

namespace EptFuzz.Cli;

/// <summary>
/// The SharpFuzz-instrumented implementation (<c>instrumented/EptFuzz.Impl.dll</c> next to the CLI,
/// written by the build: see EptFuzz.Cli.csproj), for <c>--coverage code</c>. SharpFuzz's trace
/// map and previous-location register are statics of its runtime class
/// (<c>SharpFuzz.Common.Trace</c>), shared by every thread of a process; so each worker loads its
/// own copy of the instrumented implementation and of that runtime into its own
/// <see cref="AssemblyLoadContext"/>, and points the copy's map at memory of its own. The contract
/// is shared with the default context, so the copies' hypervisor and target are the harness's
/// <see cref="IEptHypervisor"/> and <see cref="ITarget"/>.
/// </summary>
internal sealed class InstrumentedImpl : ICodeCoverageSource
{
    /// <summary>The trace map's size: SharpFuzz's edge indices are 16 bits.</summary>
    public const int MapSize = 1 << 16;

    private readonly string directory;
    private readonly string targetList;
    private readonly KnownDivergences known;

    private InstrumentedImpl(string directory, string targetList, KnownDivergences known)
    {
        this.directory = directory;
        this.targetList = targetList;
        this.known = known;
    }

    /// <summary>Where the build puts the instrumented copy.</summary>
    public static string Directory => Path.Combine(AppContext.BaseDirectory, "instrumented");

    /// <summary>The source, or null (and why) when the build carries no instrumented copy or the targets do not include <c>impl</c>'s hypervisor.</summary>
    public static ICodeCoverageSource? TryCreate(string targetList, KnownDivergences known, out string? why)
    {
        why = null;
        if (!File.Exists(Path.Combine(Directory, "EptFuzz.Impl.dll")) || !File.Exists(Path.Combine(Directory, "SharpFuzz.Common.dll")))
        {
            why = $"no instrumented implementation in {Directory} (the CLI's build writes it with the sharpfuzz tool; was it built with -p:EptFuzzInstrument=false?)";
            return null;
        }

        if (targetList.Contains(Composition.ExecPrefix, StringComparison.Ordinal))
        {
            why = "code coverage is of the in-tree implementation; an exec: target builds the tables in another process";
            return null;
        }

        return new InstrumentedImpl(Directory, targetList, known);
    }

    public (RunOptions Options, ICodeTracer Tracer) ForWorker(int worker)
    {
        var context = new WorkerContext(directory, worker);
        Assembly impl = context.LoadFromAssemblyPath(Path.Combine(directory, "EptFuzz.Impl.dll"));
        Assembly trace = context.LoadFromAssemblyName(new AssemblyName("SharpFuzz.Common"));
        var tracer = new Tracer(trace.GetType("SharpFuzz.Common.Trace", throwOnError: true)!);
        Type hypervisorType = impl.GetType("EptFuzz.Impl.Hypervisor.EptHypervisor", throwOnError: true)!;
        Type targetType = impl.GetType("EptFuzz.Impl.Target.ImplTarget", throwOnError: true)!;

        // The run's translators by name, with impl's replaced by this worker's instrumented copy.
        var (selection, error) = Composition.CreateTargets(targetList);
        if (error is not null)
        {
            throw new InvalidOperationException(error);
        }

        Func<object> newHypervisor = WithDefaults(hypervisorType);
        Func<object> newTarget = WithDefaults(targetType);
        var translators = selection.Select(t => t.Name == "impl" ? (ITarget)newTarget() : t).ToList();
        var traced = new TargetSelection(translators, () => (IEptHypervisor)newHypervisor(), HypervisorFeatures.All, null);
        return (Composition.Options(traced, known, null, targetList), tracer);
    }

    /// <summary>The constructor whose parameters all have defaults, called with them (what <c>new T()</c> does in C#).</summary>
    private static Func<object> WithDefaults(Type type)
    {
        ConstructorInfo ctor = type.GetConstructors().OrderBy(c => c.GetParameters().Length).FirstOrDefault(c => c.GetParameters().All(p => p.HasDefaultValue))
            ?? throw new InvalidOperationException($"{type.FullName} has no constructor callable without arguments");
        object?[] arguments = [.. ctor.GetParameters().Select(p => p.DefaultValue)];
        return () => ctor.Invoke(arguments);
    }

    /// <summary>Resolves the instrumented implementation and SharpFuzz's runtime from the instrumented directory; everything else (the contract) from the default context.</summary>
    private sealed class WorkerContext(string directory, int worker) : AssemblyLoadContext($"eptfuzz-instrumented-{worker}", isCollectible: false)
    {
        protected override Assembly? Load(AssemblyName name)
        {
            if (name.Name is "EptFuzz.Impl" or "SharpFuzz.Common")
            {
                return LoadFromAssemblyPath(Path.Combine(directory, name.Name + ".dll"));
            }

            return null;
        }
    }

    /// <summary>One worker's trace map: native memory the worker's copy of SharpFuzz's Trace class points at.</summary>
    private sealed unsafe class Tracer : ICodeTracer
    {
        private readonly byte* map;
        private readonly FieldInfo previous;

        public Tracer(Type trace)
        {
            map = (byte*)NativeMemory.AllocZeroed(MapSize);
            FieldInfo shared = trace.GetField("SharedMem", BindingFlags.Public | BindingFlags.Static)
                ?? throw new InvalidOperationException("SharpFuzz.Common.Trace has no SharedMem field (an unexpected SharpFuzz version)");
            previous = trace.GetField("PrevLocation", BindingFlags.Public | BindingFlags.Static)
                ?? throw new InvalidOperationException("SharpFuzz.Common.Trace has no PrevLocation field (an unexpected SharpFuzz version)");
            if (shared.FieldType != typeof(byte*))
            {
                throw new InvalidOperationException($"SharpFuzz.Common.Trace.SharedMem is {shared.FieldType}, expected byte* (an unexpected SharpFuzz version)");
            }

            shared.SetValue(null, Pointer.Box(map, typeof(byte*)));
        }

        public ReadOnlySpan<byte> Map => new(map, MapSize);

        public void Reset()
        {
            new Span<byte>(map, MapSize).Clear();
            previous.SetValue(null, 0);
        }
    }
}
